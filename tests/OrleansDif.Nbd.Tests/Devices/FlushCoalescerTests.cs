namespace OrleansDif.Nbd.Tests.Devices;

/// <summary>Group commit of flushes, step by step (gated flushes, no timing).</summary>
public sealed class FlushCoalescerTests
{
    private sealed class GatedFlush
    {
        public readonly List<TaskCompletionSource> Started = [];
        private readonly SemaphoreSlim _starts = new(0);

        public Task Run()
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (Started)
            {
                Started.Add(gate);
            }
            _starts.Release();
            return gate.Task;
        }

        /// <summary>Waits for the next flush to start (an event, not a time).</summary>
        public Task NextStart() => _starts.WaitAsync().WaitAsync(TimeSpan.FromMinutes(1)); // bound: a hang fails, it does not stall the suite

        public int Count
        {
            get
            {
                lock (Started)
                {
                    return Started.Count;
                }
            }
        }
    }

    [Fact]
    public async Task CallersWhileAFlushRunsShareTheNextOneWhichStartsAfterIt()
    {
        var flush = new GatedFlush();
        var coalescer = new FlushCoalescer(flush.Run);
        Task first = coalescer.FlushAsync();
        await flush.NextStart();
        coalescer.WriteCompleted(); // after the running flush started: it does not cover this write
        Task second = coalescer.FlushAsync();
        Task third = coalescer.FlushAsync();
        Assert.Equal(1, flush.Count); // nothing new starts while one runs
        Assert.False(second.IsCompleted);

        flush.Started[0].SetResult();
        await first;
        // The first flush started before they asked: it does not answer them; the next one, shared, does.
        await flush.NextStart();
        Assert.Equal(2, flush.Count);
        Assert.False(second.IsCompleted);
        flush.Started[1].SetResult();
        await Task.WhenAll(second, third);
        Assert.Equal(2, coalescer.Flushes);

        Task alone = coalescer.FlushAsync(); // idle again: starts at once
        await flush.NextStart();
        flush.Started[2].SetResult();
        await alone;
    }

    [Fact]
    public async Task AFailureReachesEveryCallerOfThatFlushAndTheNextFlushRunsAfresh()
    {
        int calls = 0;
        var coalescer = new FlushCoalescer(() => ++calls == 1
            ? Task.FromException(new BlockDeviceException(NbdError.Io, "lost"))
            : Task.CompletedTask);
        await Assert.ThrowsAsync<BlockDeviceException>(() => coalescer.FlushAsync());
        await coalescer.FlushAsync();
        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task ACallerWhoseWritesAllCompletedBeforeTheRunningFlushStartedJoinsIt()
    {
        var flush = new GatedFlush();
        var coalescer = new FlushCoalescer(flush.Run);
        coalescer.WriteCompleted();
        Task first = coalescer.FlushAsync();       // covers write 1
        await flush.NextStart();
        Task joined = coalescer.FlushAsync();      // no write completed since it started: the same flush covers it
        coalescer.WriteCompleted();
        Task next = coalescer.FlushAsync();        // write 2 completed after it started: the next flush
        flush.Started[0].SetResult();
        await Task.WhenAll(first, joined);
        Assert.False(next.IsCompleted);
        await flush.NextStart();
        flush.Started[1].SetResult();
        await next;
        Assert.Equal(2, coalescer.Flushes);
    }
}
