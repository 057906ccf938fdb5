namespace OrleansDif.Nbd;

/// <summary>
/// Group commit of flushes: a flush asked for while one runs waits for the next one, which starts when the running one
/// ends and serves every caller that arrived meanwhile. Each caller is answered by a flush that started after it asked,
/// so it covers every write completed before the request; at most one flush runs and one waits, however many clients
/// flush. A failure goes to every caller of that flush (each is told).
/// </summary>
public sealed class FlushCoalescer(Func<Task> flush)
{
    private readonly object _gate = new();
    private bool _running;
    private TaskCompletionSource? _waiting;   // callers of the next flush (not started yet)
    private long _flushes;

    /// <summary>Flushes actually run.</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    public Task FlushAsync()
    {
        bool start = false;
        Task answer;
        lock (_gate)
        {
            _waiting ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            answer = _waiting.Task;
            if (!_running)
            {
                _running = start = true;
            }
        }
        if (start)
        {
            _ = RunAsync();
        }
        return answer;
    }

    private async Task RunAsync()
    {
        while (true)
        {
            TaskCompletionSource batch;
            lock (_gate)
            {
                if (_waiting is null)
                {
                    _running = false;
                    return;
                }
                batch = _waiting;
                _waiting = null; // callers from now on wait for the flush after this one
            }
            Interlocked.Increment(ref _flushes);
            try
            {
                await flush();
                batch.SetResult();
            }
            catch (Exception e)
            {
                batch.SetException(e);
            }
        }
    }
}
