namespace DBSync.Cli;

internal static class Program
{
    private static Task<int> Main(string[] args) => DBSyncCli.RunAsync(args, CliConsole.System, Environment.GetEnvironmentVariable);
}
