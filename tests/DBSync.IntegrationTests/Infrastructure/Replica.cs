using DBSync.Sample;
using Npgsql;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>An in-memory copy of the seed tables, kept by applying every delivered change in order.</summary>
public sealed class Replica
{
    private readonly object _lock = new();

    public Dictionary<int, User> Users { get; } = [];

    public Dictionary<string, Restaurant> Restaurants { get; } = [];

    public Dictionary<(int, string), Visit> Visits { get; } = [];

    public void Register(DBSyncClient client)
    {
        client.On<User>(c => Apply(c, Users, u => u.Id));
        client.On<Restaurant>(c => Apply(c, Restaurants, r => r.Id));
        client.On<Visit>(c => Apply(c, Visits, v => (v.UserId, v.RestaurantId)));
    }

    public T Read<T>(Func<Replica, T> read)
    {
        lock (_lock)
            return read(this);
    }

    private void Apply<T, TKey>(Change<T> change, Dictionary<TKey, T> rows, Func<T, TKey> key) where T : ISyncTable<T> where TKey : notnull
    {
        lock (_lock)
        {
            switch (change.Kind)
            {
                case ChangeKind.Truncate:
                    rows.Clear();
                    break;
                case ChangeKind.Delete:
                    rows.Remove(key(change.Old!));
                    break;
                default:
                    Assert.True(change.UnchangedToast.IsEmpty, "these tests write no TOASTed values");
                    if (change.Old is not null)
                        rows.Remove(key(change.Old));
                    rows[key(change.New!)] = change.New!;
                    break;
            }
        }
    }

    /// <summary>Asserts the replica equals the source tables, row by row and column by column.</summary>
    public async Task AssertEqualsSourceAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var users = await ReadAsync(connection, "SELECT id, first_name, user_name, email, avatar, homepage, date_of_birth, address, interests FROM users",
            r => Describe(r.GetInt32(0), r.GetString(1), r.GetString(2), r.GetString(3), Text(r, 4), Text(r, 5), r.IsDBNull(6) ? null : r.GetFieldValue<DateOnly>(6), Text(r, 7), r.IsDBNull(8) ? null : r.GetFieldValue<string[]>(8)));
        var restaurants = await ReadAsync(connection, "SELECT id, name, description, address, rating, tags FROM restaurant",
            r => Describe(r.GetString(0), r.GetString(1), Text(r, 2), Text(r, 3), r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : r.GetFieldValue<string[]>(5)));
        var visits = await ReadAsync(connection, "SELECT user_id, restaurant_id, amount_spent, visit_rating FROM visit",
            r => Describe(r.GetInt32(0), r.GetString(1), r.GetDecimal(2), r.IsDBNull(3) ? null : r.GetInt32(3)));

        lock (_lock)
        {
            Assert.Equal(users, Users.Values.Select(u => Describe(u.Id, u.FirstName, u.UserName, u.Email, u.Avatar, u.Homepage, u.DateOfBirth, u.Address, u.Interests)).Order().ToList());
            Assert.Equal(restaurants, Restaurants.Values.Select(r => Describe(r.Id, r.Name, r.Description, r.Address, r.Rating, r.Tags)).Order().ToList());
            Assert.Equal(visits, Visits.Values.Select(v => Describe(v.UserId, v.RestaurantId, v.AmountSpent, v.VisitRating)).Order().ToList());
        }
    }

    private static string? Text(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static string Describe(params object?[] values) => string.Join(" | ", values.Select(v => v switch
    {
        null => "null",
        string[] a => "[" + string.Join(",", a.Select(e => e ?? "null")) + "]",
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => v.ToString(),
    }));

    private static async Task<List<string>> ReadAsync(NpgsqlConnection connection, string sql, Func<NpgsqlDataReader, string> describe)
    {
        var rows = new List<string>();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add(describe(reader));
        return [.. rows.Order()];
    }
}
