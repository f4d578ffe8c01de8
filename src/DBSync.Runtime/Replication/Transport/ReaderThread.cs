using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace DBSync.Replication.Transport;

/// <summary>
/// A dedicated thread for the stream's blocking socket reads. The session's loop runs on it while frames arrive and
/// handlers complete synchronously: the kernel wakes this thread directly, with no hand-off to the thread pool (which on
/// a busy machine can wait for the scheduler far longer than the read itself). When a handler completes asynchronously
/// the loop continues on the thread pool, and its next read comes back here through <see cref="SwitchTo"/>.
/// </summary>
internal sealed class ReaderThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = [];
    private readonly Thread _thread;
    private int _disposed;

    public ReaderThread(string name)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Whether the caller runs on this thread.</summary>
    public bool IsCurrent => Thread.CurrentThread == _thread;

    /// <summary>Continues the awaiting method on this thread.</summary>
    public SwitchAwaitable SwitchTo() => new(this);

    /// <summary>The thread ends once the work posted to it is done.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _work.CompleteAdding();
    }

    private void Run()
    {
        foreach (var work in _work.GetConsumingEnumerable())
            work();
        _work.Dispose();
    }

    /// <summary>Awaits a switch to the reader thread (completes at once when already on it).</summary>
    public readonly struct SwitchAwaitable(ReaderThread thread) : INotifyCompletion
    {
        public SwitchAwaitable GetAwaiter() => this;

        public bool IsCompleted => thread.IsCurrent;

        public void OnCompleted(Action continuation) => thread._work.Add(continuation);

        public void GetResult()
        {
        }
    }
}
