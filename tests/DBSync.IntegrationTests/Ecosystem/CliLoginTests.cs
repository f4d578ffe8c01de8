using DBSync.Cli;
using DBSync.IntegrationTests.Infrastructure;
using Npgsql;

namespace DBSync.IntegrationTests.Ecosystem;

/// <summary>
/// The CLI against a server that asks for passwords (the TLS fixture's cluster; the main test cluster trusts loopback):
/// a wrong password is a login failure with exit code 3 that names the user and never shows the password, for MD5 and
/// for SCRAM over TLS alike, and the right one logs in. Also <c>Category=Transport</c>: it needs that cluster, not a
/// replication connection, so the suite's second pass (on Npgsql's replication connection) leaves it out.
/// </summary>
[Trait("Category", "Ecosystem")]
[Trait("Category", "Transport")]
public sealed class CliLoginTests(TlsServerFixture tls) : IClassFixture<TlsServerFixture>
{
    private const string WrongPassword = "not-the-password-Q7x";

    [Theory]
    [InlineData("md5_user", TlsServerFixture.Md5Password, SslMode.Disable)]
    [InlineData("scram_user", TlsServerFixture.ScramPassword, SslMode.Require)]
    public async Task WrongPassword_IsALoginFailure_ThatNamesTheUser_AndTheRightOneLogsIn(string user, string password, SslMode sslMode)
    {
        string For(string pass) => new NpgsqlConnectionStringBuilder(tls.Server.ConnectionStringFor("postgres", user, pass))
        {
            Host = "127.0.0.1",
            SslMode = sslMode,
        }.ConnectionString;

        var refused = await CliTests.ExpectAsync(ExitCodes.Connection, For(WrongPassword), "slots");
        Assert.Contains($"password authentication failed for user \"{user}\" (SQLSTATE 28P01)", refused.Error, StringComparison.Ordinal);
        Assert.Contains($"user {user}", refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(WrongPassword, refused.Out + refused.Error, StringComparison.Ordinal);

        var accepted = await CliTests.ExpectAsync(ExitCodes.Success, For(password), "publications");
        Assert.Equal("No publications in database postgres.", accepted.Out.Trim());
        Assert.DoesNotContain(password, accepted.Out + accepted.Error, StringComparison.Ordinal);
    }
}
