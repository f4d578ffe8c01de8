using DBSync.IntegrationTests.Infrastructure;
using DBSync.Sample;

namespace DBSync.IntegrationTests;

[Collection(PostgresCollection.Name)]
[Trait("Category", "Integration")]
public sealed class StreamingTests(PostgresFixture fixture)
{
    [Fact]
    public async Task SeedTables_InsertUpdateDeleteTruncate_ArriveTypedInCommitOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("""
            INSERT INTO Users (first_name, user_name, email, avatar, homepage, date_of_birth, address, interests)
              VALUES ('Ada', 'ada', 'ada@example.com', 'a.png', NULL, '1815-12-10', 'London', ARRAY['math', NULL, 'engines', '', 'with "quotes", commas']);
            INSERT INTO Users (first_name, user_name, email) VALUES ('Grace', 'grace', 'grace@example.com');
            INSERT INTO Restaurant (id, name, description, address, rating, tags) VALUES ('r-1', 'Tofu House', NULL, 'Seoul', 4, ARRAY[]::text[]);
            INSERT INTO Visit (user_id, restaurant_id, amount_spent, visit_rating) VALUES (1, 'r-1', 23.50, NULL);
            """);
        await db.ExecuteAsync("UPDATE Users SET email = 'ada@lovelace.example', interests = NULL WHERE id = 1");
        await db.ExecuteAsync("UPDATE Restaurant SET rating = NULL, tags = ARRAY['korean'] WHERE id = 'r-1'");
        await db.ExecuteAsync("UPDATE Visit SET amount_spent = -0.05, visit_rating = 5 WHERE user_id = 1");
        await db.ExecuteAsync("DELETE FROM Visit WHERE user_id = 1 AND restaurant_id = 'r-1'");
        await db.ExecuteAsync("DELETE FROM Users WHERE id = 2");
        await db.ExecuteAsync("TRUNCATE Visit, Restaurant CASCADE");

        await run.WaitUntilAsync(r => r.Transactions.Count == 7, "7 transactions");

        var users = run.Recorder.Of<User>();
        Assert.Equal([ChangeKind.Insert, ChangeKind.Insert, ChangeKind.Update, ChangeKind.Delete], users.Select(c => c.Kind));
        var ada = users[0].New!;
        Assert.Equal(1, ada.Id);
        Assert.Equal("Ada", ada.FirstName);
        Assert.Equal("ada", ada.UserName);
        Assert.Equal("ada@example.com", ada.Email);
        Assert.Equal("a.png", ada.Avatar);
        Assert.Null(ada.Homepage);
        Assert.Equal(new DateOnly(1815, 12, 10), ada.DateOfBirth);
        Assert.Equal("London", ada.Address);
        Assert.Equal((IEnumerable<string?>)["math", null, "engines", "", "with \"quotes\", commas"], (IEnumerable<string?>)ada.Interests!);
        var grace = users[1].New!;
        Assert.Equal((2, "Grace", (DateOnly?)null, (string?[]?)null), (grace.Id, grace.FirstName, grace.DateOfBirth, grace.Interests));
        Assert.Equal(("ada@lovelace.example", (string?[]?)null), (users[2].New!.Email, users[2].New!.Interests));
        Assert.Equal(OldRowKind.None, users[2].OldRowKind);
        Assert.Equal(OldRowKind.Key, users[3].OldRowKind);
        Assert.Equal(2, users[3].Old!.Id);
        Assert.Null(users[3].New);

        var restaurants = run.Recorder.Of<Restaurant>();
        Assert.Equal([ChangeKind.Insert, ChangeKind.Update, ChangeKind.Truncate], restaurants.Select(c => c.Kind));
        Assert.Equal(("r-1", "Tofu House", (string?)null, "Seoul", (int?)4), (restaurants[0].New!.Id, restaurants[0].New!.Name, restaurants[0].New!.Description, restaurants[0].New!.Address, restaurants[0].New!.Rating));
        Assert.Empty(restaurants[0].New!.Tags!);
        Assert.Null(restaurants[1].New!.Rating);
        Assert.Equal((IEnumerable<string?>)["korean"], (IEnumerable<string?>)restaurants[1].New!.Tags!);
        Assert.Null(restaurants[2].Row);

        var visits = run.Recorder.Of<Visit>();
        Assert.Equal([ChangeKind.Insert, ChangeKind.Update, ChangeKind.Delete, ChangeKind.Truncate], visits.Select(c => c.Kind));
        Assert.Equal((1, "r-1", 23.50m, (int?)null), (visits[0].New!.UserId, visits[0].New!.RestaurantId, visits[0].New!.AmountSpent, visits[0].New!.VisitRating));
        Assert.Equal("23.50", visits[0].New!.AmountSpent.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal((-0.05m, (int?)5), (visits[1].New!.AmountSpent, visits[1].New!.VisitRating));
        Assert.Equal((1, "r-1"), (visits[2].Old!.UserId, visits[2].Old!.RestaurantId));

        // Commit order, commit LSNs ascending, each change inside its transaction's bounds.
        var transactions = run.Recorder.Transactions;
        Assert.True(transactions.Zip(transactions.Skip(1)).All(p => p.First.CommitLsn < p.Second.CommitLsn));
        Assert.Equal([4, 1, 1, 1, 1, 1, 2], transactions.Select(t => t.ChangeCount));
        Assert.Equal(transactions[0].Xid, users[0].Xid);
        Assert.Equal(transactions[0].CommitLsn, users[0].CommitLsn);
        Assert.True(users[0].Lsn < users[0].CommitLsn);
        Assert.True(users[0].Lsn < users[1].Lsn);
    }

    [Fact]
    public async Task EveryType_InsertUpdateDelete_DecodesValuesAndNulls()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server, seedSchema: false);
        await db.ExecuteAsync(AllTypes.CreateSql);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) => client.On<AllTypes>(c => recorder.Add(c)));

        await db.ExecuteAsync("""
            INSERT INTO all_types VALUES (
              9223372036854775807,
              -32768, 32767,
              -2147483648, 2147483647,
              -9223372036854775808, 9223372036854775807,
              true, false,
              'héllo 𝄞', '',
              -12345678901234567890.123456789, 0.0001,
              '0001-01-01', '9999-12-31',
              '2024-02-29 23:59:59.999999', '1999-12-31 00:00:00.000001',
              '2024-06-01 12:34:56.789012+02', '1970-01-01 00:00:00+00',
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000000',
              ARRAY['x', NULL], ARRAY[]::text[]);
            INSERT INTO all_types (id, small, num, big, flag, label, amount, day, stamp, stamp_tz, uid, tags)
              VALUES (1, 0, 0, 0, false, '', 0, '2000-01-01', '2000-01-01', '2000-01-01 00:00:00+00', gen_random_uuid(), '{}');
            """);
        await db.ExecuteAsync("UPDATE all_types SET amount_n = 99999999.9999, num_n = NULL WHERE id = 9223372036854775807");
        await db.ExecuteAsync("DELETE FROM all_types WHERE id = 1");
        await run.WaitUntilAsync(r => r.Of<AllTypes>().Count == 4, "4 changes of all_types");

        var changes = run.Recorder.Of<AllTypes>();
        var row = changes[0].New!;
        Assert.Equal(long.MaxValue, row.Id);
        Assert.Equal((short.MinValue, (short?)short.MaxValue), (row.Small, row.SmallN));
        Assert.Equal((int.MinValue, (int?)int.MaxValue), (row.Num, row.NumN));
        Assert.Equal((long.MinValue, (long?)long.MaxValue), (row.Big, row.BigN));
        Assert.Equal((true, (bool?)false), (row.Flag, row.FlagN));
        Assert.Equal(("héllo 𝄞", ""), (row.Label, row.LabelN));
        Assert.Equal(-12345678901234567890.123456789m, row.Amount);
        Assert.Equal(0.0001m, row.AmountN);
        Assert.Equal("0.0001", row.AmountN!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal((DateOnly.MinValue, (DateOnly?)new DateOnly(9999, 12, 31)), (row.Day, row.DayN));
        Assert.Equal(new DateTime(2024, 2, 29, 23, 59, 59, DateTimeKind.Unspecified).AddTicks(9_999_990), row.Stamp);
        Assert.Equal(DateTimeKind.Unspecified, row.Stamp.Kind);
        Assert.Equal(new DateTime(1999, 12, 31, 0, 0, 0).AddTicks(10), row.StampN);
        Assert.Equal(new DateTimeOffset(2024, 6, 1, 10, 34, 56, TimeSpan.Zero).AddTicks(7_890_120), row.StampTz);
        Assert.Equal(TimeSpan.Zero, row.StampTz.Offset);
        Assert.Equal(DateTimeOffset.UnixEpoch, row.StampTzN);
        Assert.Equal(Guid.Parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), row.Uid);
        Assert.Equal(Guid.Empty, row.UidN);
        Assert.Equal((IEnumerable<string?>)["x", null], (IEnumerable<string?>)row.Tags);
        Assert.Empty(row.TagsN!);

        var nulls = changes[1].New!;
        Assert.Equal(1, nulls.Id);
        Assert.Null(nulls.SmallN);
        Assert.Null(nulls.NumN);
        Assert.Null(nulls.BigN);
        Assert.Null(nulls.FlagN);
        Assert.Null(nulls.LabelN);
        Assert.Null(nulls.AmountN);
        Assert.Null(nulls.DayN);
        Assert.Null(nulls.StampN);
        Assert.Null(nulls.StampTzN);
        Assert.Null(nulls.UidN);
        Assert.Null(nulls.TagsN);
        Assert.Empty(nulls.Tags);

        Assert.Equal(ChangeKind.Update, changes[2].Kind);
        Assert.Equal(99999999.9999m, changes[2].New!.AmountN);
        Assert.Null(changes[2].New!.NumN);
        Assert.Equal((ChangeKind.Delete, 1L), (changes[3].Kind, changes[3].Old!.Id));
    }

    [Fact]
    public async Task UpdateNotTouchingToastedAddress_ReportsAddressAsUnchangedToast()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        // Random hex does not compress below the TOAST threshold, so the value is stored out of line.
        await db.ExecuteAsync("""
            INSERT INTO Users (first_name, user_name, email, address)
              SELECT 'Ada', 'ada', 'ada@example.com', string_agg(md5(random()::text), '') FROM generate_series(1, 300)
            """);
        var address = await db.ScalarAsync<string>("SELECT address FROM Users WHERE id = 1");
        Assert.True(address.Length > 4096);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("UPDATE Users SET first_name = 'Augusta' WHERE id = 1");
        await db.ExecuteAsync("UPDATE Users SET address = 'short' WHERE id = 1");
        await run.WaitUntilAsync(r => r.Of<User>().Count == 2, "2 updates");

        var untouched = run.Recorder.Of<User>()[0];
        Assert.Equal("Augusta", untouched.New!.FirstName);
        Assert.True(untouched.IsUnchangedToast("address"));
        Assert.True(untouched.IsUnchangedToast(nameof(User.Address)));
        Assert.False(untouched.IsUnchangedToast("first_name"));
        Assert.Equal([Change<User>.Table.Columns.Single(c => c.Name == "address").Index], untouched.UnchangedToast.Indexes);
        Assert.Null(untouched.New.Address); // a default, flagged above; never the value

        var rewritten = run.Recorder.Of<User>()[1];
        Assert.True(rewritten.UnchangedToast.IsEmpty);
        Assert.Equal("short", rewritten.New!.Address);
    }

    [Fact]
    public async Task ReplicaIdentityFull_UpdateAndDelete_CarryTheWholeOldRowIncludingToastedValues()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("""
            ALTER TABLE Restaurant REPLICA IDENTITY FULL;
            INSERT INTO Restaurant (id, name, description, rating, tags)
              SELECT 'r-1', 'Tofu House', string_agg(md5(random()::text), ''), 4, ARRAY['a', 'b'] FROM generate_series(1, 300);
            """);
        var description = await db.ScalarAsync<string>("SELECT description FROM Restaurant");
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("UPDATE Restaurant SET rating = 5 WHERE id = 'r-1'");
        await db.ExecuteAsync("DELETE FROM Restaurant WHERE id = 'r-1'");
        await run.WaitUntilAsync(r => r.Of<Restaurant>().Count == 2, "update and delete");

        var update = run.Recorder.Of<Restaurant>()[0];
        Assert.Equal(OldRowKind.Full, update.OldRowKind);
        Assert.Equal(("r-1", "Tofu House", description, (int?)4), (update.Old!.Id, update.Old.Name, update.Old.Description, update.Old.Rating));
        Assert.Equal((IEnumerable<string?>)["a", "b"], (IEnumerable<string?>)update.Old.Tags!);
        Assert.Equal(5, update.New!.Rating);
        Assert.True(update.IsUnchangedToast("description"));

        var delete = run.Recorder.Of<Restaurant>()[1];
        Assert.Equal(OldRowKind.Full, delete.OldRowKind);
        Assert.Equal((5, description), (delete.Old!.Rating, delete.Old.Description));
    }

    [Fact]
    public async Task CompositeKey_UpdateOfKeyAndDelete_CarryBothKeyColumns()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await db.ExecuteAsync("""
            INSERT INTO Users (first_name, user_name, email) VALUES ('a', 'a', 'a@x'), ('b', 'b', 'b@x');
            INSERT INTO Restaurant (id, name) VALUES ('r-1', 'one'), ('r-2', 'two');
            """);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await db.ExecuteAsync("INSERT INTO Visit VALUES (1, 'r-1', 10.00, 3), (2, 'r-1', 1.10, NULL)");
        await db.ExecuteAsync("UPDATE Visit SET restaurant_id = 'r-2' WHERE user_id = 1 AND restaurant_id = 'r-1'");
        await db.ExecuteAsync("DELETE FROM Visit WHERE user_id = 2 AND restaurant_id = 'r-1'");
        await run.WaitUntilAsync(r => r.Of<Visit>().Count == 4, "4 visit changes");

        var visits = run.Recorder.Of<Visit>();
        var keyUpdate = visits[2];
        Assert.Equal(OldRowKind.Key, keyUpdate.OldRowKind);
        Assert.Equal((1, "r-1"), (keyUpdate.Old!.UserId, keyUpdate.Old.RestaurantId));
        Assert.Equal((1, "r-2", 10.00m), (keyUpdate.New!.UserId, keyUpdate.New.RestaurantId, keyUpdate.New.AmountSpent));
        Assert.False(KeyComparer<Visit>.Instance.Equals(keyUpdate.Old, keyUpdate.New));

        var delete = visits[3];
        Assert.Equal((2, "r-1"), (delete.Old!.UserId, delete.Old.RestaurantId));
        Assert.True(KeyComparer<Visit>.Instance.Equals(delete.Old, visits[1].New!));
        Assert.Equal(KeyComparer<Visit>.Instance.GetHashCode(delete.Old), KeyComparer<Visit>.Instance.GetHashCode(visits[1].New!));
    }

    [Fact]
    public async Task ConcurrentTransactions_AreDeliveredInCommitOrderWithTheirTransactionHandlerLast()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString);

        await using var first = await db.OpenAsync();
        await using var second = await db.OpenAsync();
        await using var tx1 = await first.BeginTransactionAsync();
        await using var tx2 = await second.BeginTransactionAsync();
        await Execute(first, "INSERT INTO Restaurant (id, name) VALUES ('first-1', 'began first')");
        await Execute(second, "INSERT INTO Restaurant (id, name) VALUES ('second-1', 'began second')");
        await Execute(first, "INSERT INTO Restaurant (id, name) VALUES ('first-2', 'began first')");
        await tx2.CommitAsync();
        await tx1.CommitAsync();
        await run.WaitUntilAsync(r => r.Transactions.Count == 2, "2 transactions");

        var order = run.Recorder.All.Select(e => e switch
        {
            Change<Restaurant> c => c.New!.Id,
            CommittedTransaction t => $"commit {t.ChangeCount}",
            _ => e.ToString(),
        });
        Assert.Equal(["second-1", "commit 1", "first-1", "first-2", "commit 2"], order);

        static async Task Execute(Npgsql.NpgsqlConnection connection, string sql)
        {
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task LogicalMessages_AreDeliveredInStreamOrder()
    {
        await using var db = await TestDatabase.CreateAsync(fixture.Server);
        await using var run = await StreamRun.StartAsync(db.ConnectionString, (client, recorder) =>
        {
            StreamRun.RegisterSeedTables(client, recorder);
            client.OnMessage((m, _) =>
            {
                recorder.Add(m);
                return ValueTask.CompletedTask;
            });
        });

        await db.ExecuteAsync("BEGIN; INSERT INTO Restaurant (id, name) VALUES ('r', 'n'); SELECT pg_logical_emit_message(true, 'app', 'inside'); COMMIT;");
        await db.ExecuteAsync("SELECT pg_logical_emit_message(false, 'app', convert_to('outside ✓', 'UTF8'))");
        await run.WaitUntilAsync(r => r.All.OfType<LogicalMessage>().Count() == 2, "2 messages");

        var messages = run.Recorder.All.OfType<LogicalMessage>().ToList();
        Assert.Equal(("app", "inside", true), (messages[0].Prefix, System.Text.Encoding.UTF8.GetString(messages[0].Content.Span), messages[0].Transactional));
        Assert.Equal(run.Recorder.Transactions[0].Xid, messages[0].Xid);
        Assert.Equal(("outside ✓", false), (System.Text.Encoding.UTF8.GetString(messages[1].Content.Span), messages[1].Transactional));
    }
}
