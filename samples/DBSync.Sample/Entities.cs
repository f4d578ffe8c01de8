using DBSync;

namespace DBSync.Sample;

// The seed schema's tables as DBSync entities. Column names default to the snake_case of the property
// (FirstName -> first_name); unquoted SQL names are lower case, so "Users" is the table users.

/// <summary>A user (serial primary key).</summary>
[SyncTable("users")]
public partial class User
{
    [PrimaryKey]
    public int Id { get; set; }

    public string FirstName { get; set; } = "";

    public string UserName { get; set; } = "";

    public string Email { get; set; } = "";

    public string? Avatar { get; set; }

    public string? Homepage { get; set; }

    public DateOnly? DateOfBirth { get; set; }

    public string? Address { get; set; }

    public string?[]? Interests { get; set; }
}

/// <summary>A restaurant (varchar primary key).</summary>
[SyncTable("restaurant")]
public partial class Restaurant
{
    [PrimaryKey]
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    public string? Description { get; set; }

    public string? Address { get; set; }

    public int? Rating { get; set; }

    public string?[]? Tags { get; set; }
}

/// <summary>A user's visit to a restaurant (composite primary key).</summary>
[SyncTable("visit")]
public partial class Visit
{
    [PrimaryKey(Order = 0)]
    public int UserId { get; set; }

    [PrimaryKey(Order = 1)]
    public string RestaurantId { get; set; } = "";

    public decimal AmountSpent { get; set; }

    public int? VisitRating { get; set; }
}
