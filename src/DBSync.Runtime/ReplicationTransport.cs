namespace DBSync;

/// <summary>Which client reads the replication stream (<see cref="DBSyncOptions.ReplicationTransport"/>).</summary>
public enum ReplicationTransport
{
    /// <summary>DBSync's own where it can serve the connection string and the server's authentication, else Npgsql's.</summary>
    Auto,

    /// <summary>
    /// DBSync's own: the protocol on a socket of its own (TCP or Unix), with TLS (SSL Mode Disable, Prefer, Require,
    /// VerifyCA, VerifyFull) and trust, password, MD5 or SCRAM-SHA-256 authentication; blocking reads in large batches on
    /// a dedicated thread, which costs a fraction of the CPU and avoids the thread pool's scheduling delays. Anything
    /// else (several hosts, client certificates, Kerberos/GSS/SSPI, a password file, required channel binding) is a
    /// <see cref="DBSyncConfigurationException"/>.
    /// </summary>
    Direct,

    /// <summary>Npgsql's <c>LogicalReplicationConnection</c>, with everything Npgsql supports.</summary>
    Npgsql,
}
