namespace DBSync.ApplyBench;

// pgbench's four tables (pgbench -i) as DBSync entities. pgbench creates every column but the keys without NOT NULL.

/// <summary>pgbench_accounts: 100,000 rows per scale unit.</summary>
[SyncTable("pgbench_accounts")]
internal sealed partial class PgbenchAccount
{
    [PrimaryKey]
    public int Aid { get; set; }

    public int? Bid { get; set; }

    public int? Abalance { get; set; }

    public string? Filler { get; set; }
}

/// <summary>pgbench_branches: one row per scale unit.</summary>
[SyncTable("pgbench_branches")]
internal sealed partial class PgbenchBranch
{
    [PrimaryKey]
    public int Bid { get; set; }

    public int? Bbalance { get; set; }

    public string? Filler { get; set; }
}

/// <summary>pgbench_tellers: ten rows per scale unit.</summary>
[SyncTable("pgbench_tellers")]
internal sealed partial class PgbenchTeller
{
    [PrimaryKey]
    public int Tid { get; set; }

    public int? Bid { get; set; }

    public int? Tbalance { get; set; }

    public string? Filler { get; set; }
}

/// <summary>pgbench_history, with the key the benchmark adds to it (<see cref="PgbenchSchema.HistoryKeySql"/>): pgbench
/// creates it without one, and DBSync's snapshot and applier need one.</summary>
[SyncTable("pgbench_history")]
internal sealed partial class PgbenchHistory
{
    [PrimaryKey]
    public long Id { get; set; }

    public int? Tid { get; set; }

    public int? Bid { get; set; }

    public int? Aid { get; set; }

    public int? Delta { get; set; }

    public DateTime? Mtime { get; set; }

    public string? Filler { get; set; }
}
