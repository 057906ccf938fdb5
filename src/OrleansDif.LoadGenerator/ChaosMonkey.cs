using OrleansDif.Cluster;

namespace OrleansDif.LoadGenerator;

/// <summary>
/// <c>--chaos kill-silo</c>: every period, or after every N acknowledged writes, SIGKILLs one silo process of a
/// local cluster (a crash: no shutdown, no deactivation, its memory gone) and starts it again. Victims go round in
/// a shuffled order so every silo dies in turn; silo 0 only when membership survives it (Redis), since development
/// clustering lives in silo 0. With a kill count the monkey stops after that many kills and restarts.
/// </summary>
/// <c>--chaos power-loss</c>: each time, every silo is SIGKILLed at once (the power fails: every page, every
/// flusher and every disk's volatile cache gone), then all are started again; a power loss counts as one kill.
public sealed class ChaosMonkey(LocalCluster cluster, int silos, TimeSpan every, int seed, TextWriter log, int? everyWrites = null, int kills = 0,
    ChaosKind kind = ChaosKind.KillSilo)
{
    public ChaosKind Kind => kind;

    /// <summary>Power losses so far (every silo at once).</summary>
    public int PowerLosses => Volatile.Read(ref _powerLosses);

    private int _powerLosses;

    private readonly TaskCompletionSource _allKilled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _writesAtLastRestart;

    /// <summary>The kill count asked for (0: none, kill until stopped).</summary>
    public int Target => kills;

    /// <summary>Acknowledged writes (as counted by the caller) when the last restart completed.</summary>
    public long WritesAtLastRestart => Interlocked.Read(ref _writesAtLastRestart);

    /// <summary>Completes when <see cref="Target"/> kills and their restarts are done.</summary>
    public Task AllKilled => _allKilled.Task;

    private readonly Random _random = new(seed);
    private readonly List<string> _killed = [];
    private int _kills;
    private int _restarts;

    public int Kills => Volatile.Read(ref _kills);

    public int Restarts => Volatile.Read(ref _restarts);

    /// <summary>The silos killed, in order, with the second of the run each died at.</summary>
    public IReadOnlyList<string> Killed
    {
        get
        {
            lock (_killed)
            {
                return [.. _killed];
            }
        }
    }

    /// <summary>The silos that may be killed.</summary>
    public IReadOnlyList<int> Victims => Enumerable.Range(cluster.PrimaryMayDie ? 0 : 1, cluster.PrimaryMayDie ? silos : silos - 1).ToList();

    /// <summary>Kills and restarts silos until <paramref name="stop"/>; a silo down when it fires is restarted first.</summary>
    public async Task RunAsync(Func<double> second, CancellationToken stop) => await RunAsync(second, () => 0, stop);

    /// <summary>
    /// Kills and restarts silos until <paramref name="stop"/> or the kill count; <paramref name="acknowledgedWrites"/>
    /// counts the writes acknowledged so far (the event that paces kills counted in writes).
    /// </summary>
    public async Task RunAsync(Func<double> second, Func<long> acknowledgedWrites, CancellationToken stop)
    {
        IReadOnlyList<int> victims = Victims;
        if (kind == ChaosKind.PowerLoss && !cluster.PrimaryMayDie)
        {
            throw new UsageException("--chaos power-loss: needs membership that survives every silo (a Redis config): development clustering lives in silo 0, and clients do not come back after it dies");
        }
        if (victims.Count == 0 && kind == ChaosKind.KillSilo)
        {
            throw new UsageException("--chaos kill-silo: no silo may be killed (one silo under development clustering; use a Redis config)");
        }
        var order = new Queue<int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int n = 1; !stop.IsCancellationRequested && (kills == 0 || n <= kills); n++)
        {
            try
            {
                if (everyWrites is int writes)
                {
                    // Paced by events: the next kill once that many writes were acknowledged since the last restart.
                    long due = WritesAtLastRestart + writes;
                    while (acknowledgedWrites() < due)
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(5), stop);
                    }
                }
                else
                {
                    // A fixed cadence from the start (one kill every period), whatever the restarts took.
                    TimeSpan wait = every * n - clock.Elapsed;
                    await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, stop);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
            int[] down;
            string what, said;
            if (kind == ChaosKind.PowerLoss)
            {
                down = [.. Enumerable.Range(0, silos)]; // restarted in order: the primary first
                (what, said) = ("all", "power loss, every silo killed");
                Interlocked.Increment(ref _powerLosses);
            }
            else
            {
                if (order.Count == 0)
                {
                    foreach (int v in victims.OrderBy(_ => _random.Next()))
                    {
                        order.Enqueue(v);
                    }
                }
                int victim = order.Dequeue();
                down = [victim];
                (what, said) = ($"silo{victim}", $"killed silo {victim}");
            }
            await Task.WhenAll(down.Select(cluster.KillAsync));
            if (kind == ChaosKind.PowerLoss)
            {
                cluster.LosePageCache();
            }
            Interlocked.Increment(ref _kills);
            lock (_killed)
            {
                _killed.Add($"{what}@{second():F1}s");
            }
            lock (log)
            {
                log.WriteLine($"chaos: {said} (SIGKILL) at {second():F1} s");
            }
            // Down for a moment, as a crashed machine is, then started again (a new generation of the same address).
            await Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None);
            foreach (int silo in down)
            {
                await cluster.RestartAsync(silo, TimeSpan.FromSeconds(90), CancellationToken.None);
            }
            Interlocked.Exchange(ref _writesAtLastRestart, acknowledgedWrites());
            Interlocked.Increment(ref _restarts);
        }
        if (kills > 0 && Restarts >= kills)
        {
            _allKilled.TrySetResult();
        }
    }
}
