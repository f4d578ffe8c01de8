namespace DBSync.Sample;

/// <summary>The writes both samples make to the seed tables, one transaction per statement, and what they produce.</summary>
public static class SeedChanges
{
    /// <summary>Row changes the statements make: 7 inserts, 3 updates, 1 delete.</summary>
    public const int Count = 11;

    /// <summary>Rows left in users, restaurant and visit afterwards (what a snapshot then reads).</summary>
    public const int RowsAfter = 6;

    public static readonly string[] Statements =
    [
        """
        INSERT INTO Users (first_name, user_name, email, date_of_birth, address, interests) VALUES
          ('Ada', 'ada', 'ada@example.com', '1815-12-10', '12 St James''s Square, London', ARRAY['math', 'engines']),
          ('Grace', 'grace', 'grace@example.com', '1906-12-09', NULL, ARRAY['compilers'])
        """,
        """
        INSERT INTO Restaurant (id, name, description, rating, tags) VALUES
          ('r-tofu', 'Tofu House', 'Soft tofu stew', 4, ARRAY['korean', 'spicy']),
          ('r-pizza', 'Pizza Place', NULL, NULL, ARRAY[]::text[])
        """,
        "INSERT INTO Visit (user_id, restaurant_id, amount_spent, visit_rating) VALUES (1, 'r-tofu', 23.50, 5), (2, 'r-pizza', 12.00, NULL), (1, 'r-pizza', 8.25, 3)",
        "UPDATE Users SET email = 'ada@lovelace.example' WHERE id = 1",
        "UPDATE Restaurant SET rating = 5, tags = array_append(tags, 'cozy') WHERE id = 'r-tofu'",
        "UPDATE Visit SET amount_spent = amount_spent + 1.25 WHERE user_id = 1 AND restaurant_id = 'r-tofu'",
        "DELETE FROM Visit WHERE user_id = 2",
    ];
}
