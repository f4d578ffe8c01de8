using Microsoft.Extensions.Logging;

namespace DBSync.IntegrationTests.Infrastructure;

/// <summary>An <see cref="ILoggerFactory"/> (or, for a host, an <see cref="ILoggerProvider"/>) that keeps every log
/// entry (message and exception text) for assertions.</summary>
public sealed class LogCapture : ILoggerFactory, ILoggerProvider
{
    private readonly List<(EventId Id, string Text)> _entries = [];

    public IReadOnlyList<(EventId Id, string Text)> Entries
    {
        get
        {
            lock (_entries)
                return [.. _entries];
        }
    }

    public bool Has(int eventId) => Entries.Any(e => e.Id.Id == eventId);

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = formatter(state, exception) + (exception is null ? "" : "\n" + exception);
            lock (capture._entries)
                capture._entries.Add((eventId, text));
        }
    }
}
