// DBSync sample: creates the seed schema (Users, Restaurant, Visit), streams its changes as typed events and prints
// them while it writes inserts, updates and deletes, then takes a snapshot of the tables (rows arrive as Read). A fourth table, dish, shows the richer
// types (an enum, money, interval, jsonb, arrays, bytea, an infinite timestamptz); a fifth, reservation, is partitioned
// by month (its changes arrive as reservation's, whichever partition holds the row).
//
//   dotnet run --project samples/DBSync.Sample
//
// With POSTGRES_HOST/PORT/USER/PASSWORD/NAME set it uses that server (wal_level must be logical; the role must be able
// to create a database and use replication); otherwise it starts a throwaway local PostgreSQL and removes it at the end.
using DBSync;
using DBSync.Sample;
using Npgsql;

await SeedDatabase.RunAsync("dbsync_sample", async (server, database) =>
{
    await server.ExecuteAsync(Dish.CreateSql, database);
    await server.ExecuteAsync(Reservation.CreateSql, database);
    await RunSampleAsync(server.ConnectionStringFor(database));
});

static async Task RunSampleAsync(string connectionString)
{
    // The seed tables' changes, a dish inserted and updated, then two reservations inserted, one moved to another month's
    // partition (a Delete and an Insert) and updated.
    const int expectedChanges = SeedChanges.Count + 2 + 5;
    var received = 0;
    var snapshotsDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    var allReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    void Count()
    {
        if (Interlocked.Increment(ref received) == expectedChanges)
            allReceived.TrySetResult();
    }

    var client = new DBSyncClient(new DBSyncOptions
    {
        ConnectionString = connectionString,
        SlotName = "dbsync_sample",
        PublicationName = "dbsync_sample",
    });

    client
        .On<User>(change =>
        {
            var user = change.Row!;
            var address = change.IsUnchangedToast(nameof(User.Address)) ? "(unchanged)" : user.Address ?? "null";
            Console.WriteLine($"{change.Kind,-8} users      id={user.Id} first_name={user.FirstName} email={user.Email} " +
                              $"date_of_birth={user.DateOfBirth?.ToString("yyyy-MM-dd") ?? "null"} address={address} " +
                              $"interests=[{string.Join(", ", user.Interests ?? [])}]   xid={change.Xid} lsn={change.Lsn}");
            Count();
        })
        .On<Restaurant>(change =>
        {
            var restaurant = change.Row!;
            Console.WriteLine($"{change.Kind,-8} restaurant id={restaurant.Id} name={restaurant.Name} rating={restaurant.Rating?.ToString() ?? "null"} " +
                              $"tags=[{string.Join(", ", restaurant.Tags ?? [])}]   xid={change.Xid} lsn={change.Lsn}");
            Count();
        })
        .On<Visit>(change =>
        {
            var visit = change.Row!;
            Console.WriteLine($"{change.Kind,-8} visit      user_id={visit.UserId} restaurant_id={visit.RestaurantId} " +
                              $"amount_spent={(change.Kind == ChangeKind.Delete ? "(key only)" : visit.AmountSpent.ToString("0.00"))}   xid={change.Xid} lsn={change.Lsn}");
            Count();
        })
        .On<Dish>(change =>
        {
            var dish = change.Row!;
            Console.WriteLine($"{change.Kind,-8} dish       id={dish.Id} name={dish.Name} spice={dish.Spice} price={dish.Price:0.00} " +
                              $"prep_time={dish.PrepTime?.ToString() ?? "null"} options=[{string.Join(", ", dish.SpiceOptions ?? [])}] " +
                              $"stock={dish.StockByDayAndShift?.GetLength(0) ?? 0}x{dish.StockByDayAndShift?.GetLength(1) ?? 0} " +
                              $"nutrition={dish.Nutrition?.GetRawText() ?? "null"} available_until={dish.AvailableUntil}   xid={change.Xid} lsn={change.Lsn}");
            Count();
        })
        .On<Reservation>(change =>
        {
            var reservation = change.Row!;
            Console.WriteLine($"{change.Kind,-8} reservation id={reservation.Id} day={reservation.Day:yyyy-MM-dd} " +
                              (change.Kind == ChangeKind.Delete ? "(key only)" : $"restaurant_id={reservation.RestaurantId} guests={reservation.Guests} note={reservation.Note ?? "null"}") +
                              $"   xid={change.Xid} lsn={change.Lsn}");
            Count();
        })
        .OnTransaction((tx, _) =>
        {
            Console.WriteLine($"-- commit xid={tx.Xid} changes={tx.ChangeCount} commit_lsn={tx.CommitLsn} at {tx.CommitTime:HH:mm:ss.fff}");
            return ValueTask.CompletedTask;
        })
        .OnSnapshotProgress(progress => Console.WriteLine(progress switch
        {
            SnapshotTableStarted started => $"== snapshot of {started.Table} started",
            SnapshotChunkCompleted chunk => $"== chunk {chunk.Chunk} of {chunk.Table}: {chunk.RowsEmitted} of {chunk.RowsRead} rows delivered, last key ({string.Join(", ", chunk.LastKey ?? [])})",
            SnapshotTableCompleted done => $"== snapshot of {done.Table} done: {done.RowsEmitted} rows",
            SnapshotsCompleted => Done("== all requested snapshots done"),
            _ => $"== {progress}",
        }));

    string Done(string message)
    {
        snapshotsDone.TrySetResult();
        return message;
    }

    using var stop = new CancellationTokenSource();
    var run = client.RunAsync(stop.Token);
    await Task.WhenAny(client.Streaming, run);
    await client.Streaming; // surfaces a setup error (wal_level, privileges, missing tables) with its message
    // The slot is new, so the initial snapshot (on by default) reads the five tables first: they are still empty.
    await snapshotsDone.Task.WaitAsync(TimeSpan.FromSeconds(60));
    snapshotsDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    Console.WriteLine("Streaming; writing changes...");

    await using (var connection = new NpgsqlConnection(connectionString))
    {
        await connection.OpenAsync();
        string[] statements =
        [
            .. SeedChanges.Statements,
            """
            INSERT INTO dish (id, restaurant_id, name, spice, price, calories, prep_time, served_from, nutrition, spice_options, stock_by_day_and_shift, photo)
            VALUES (1, 'r-tofu', 'Soondubu jjigae 🌶', 'hot', 11.50, 'NaN', '25 minutes', '11:30', '{"protein_g": 21, "vegan": false}',
                    '{mild,"extra hot",NULL}', '{{10,8},{12,NULL}}', '\x89504e47')
            """,
            "UPDATE dish SET spice = 'extra hot', prep_time = prep_time + interval '5 minutes', available_until = '2027-01-01 00:00+00' WHERE id = 1",
            "INSERT INTO reservation (id, day, restaurant_id, guests) VALUES (1, '2026-10-30', 'r-tofu', 2), (2, '2026-11-14', 'r-pizza', 4)",
            "UPDATE reservation SET day = '2026-12-24', note = 'moved to Christmas Eve' WHERE id = 1", // from October's partition to December's
            "UPDATE reservation SET guests = 5 WHERE id = 2",
        ];
        foreach (var sql in statements)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    var finished = await Task.WhenAny(allReceived.Task, run, Task.Delay(TimeSpan.FromSeconds(60)));
    if (finished != allReceived.Task)
    {
        await stop.CancelAsync();
        await run;
        throw new TimeoutException($"Received {received} of {expectedChanges} changes within 60 seconds.");
    }

    // The full current state of every table, read in chunks while the stream runs (DBLog): each row arrives as a Read.
    Console.WriteLine("Snapshot of all five tables:");
    await client.SnapshotAsync([SnapshotTable.Of<User>(), SnapshotTable.Of<Restaurant>(), SnapshotTable.Of<Visit>(), SnapshotTable.Of<Dish>(), SnapshotTable.Of<Reservation>()]);

    await stop.CancelAsync();
    await run;
    Console.WriteLine($"Received all {expectedChanges} changes and the snapshot; confirmed position {client.ConfirmedLsn}.");
}
