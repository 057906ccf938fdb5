namespace OrleansDif.Nbd;

/// <summary>
/// Group commit of flushes. A flush covers every write completed before it started, so a caller whose writes all
/// completed before the running flush started joins it; any other caller waits for the next flush, which starts when
/// the running one ends and serves every caller that arrived meanwhile. At most one flush runs and one waits, however
/// many clients flush. A failure goes to every caller of that flush (each is told).
/// </summary>
/// <remarks>
/// Writes are counted by <see cref="WriteCompleted"/>; a caller passes the count it must cover (the count when its
/// request arrived). A flush records the count when it starts.
/// </remarks>
public sealed class FlushCoalescer(Func<Task> flush)
{
    private readonly object _gate = new();
    private Task? _running;
    private long _runningCovers;              // writes completed when the running flush started
    private TaskCompletionSource? _waiting;   // callers of the next flush (not started yet)
    private long _completed;
    private long _flushes;

    /// <summary>Flushes actually run.</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Writes completed so far: what a flush asked for now must cover.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>A write completed (was acknowledged to its caller).</summary>
    public void WriteCompleted() => Interlocked.Increment(ref _completed);

    /// <summary>A flush covering every write completed before this call.</summary>
    public Task FlushAsync() => FlushAsync(Completed);

    /// <summary>A flush covering the first <paramref name="covering"/> completed writes.</summary>
    public Task FlushAsync(long covering)
    {
        bool start = false;
        Task answer;
        lock (_gate)
        {
            if (_running is not null && _runningCovers >= covering)
            {
                return _running; // started after every write this caller needs: it covers them
            }
            _waiting ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            answer = _waiting.Task;
            if (_running is null)
            {
                start = true;
                _running = _waiting.Task; // placeholder until the loop takes the batch
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
                    _running = null;
                    return;
                }
                batch = _waiting;
                _waiting = null; // callers from now on join this flush if it covers them, else wait for the next
                _running = batch.Task;
                _runningCovers = Completed;
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
