using OrleansDif.Simulation;

namespace OrleansDif.Simulation.Tests;

/// <summary>
/// The seeded simulation of the writeback protocol: thousands of schedules (crashes, power loss, faults, lease
/// expiries in every order a seed picks) hold every invariant, and a seed replays exactly.
/// </summary>
public sealed class SimulationTests
{
    private static readonly WritebackPolicy[] All = [WritebackPolicy.Stable, WritebackPolicy.Bounce, WritebackPolicy.Unstable];

    private static string Explain(IEnumerable<SimulationResult> results) => string.Join("\n\n", results.Where(r => !r.Passed).Take(3).Select(r =>
        $"seed {r.Options.Seed} ({r.Options.Policy}): {r.Violations[0]}\nreplay: {SimulationRunner.ReplayCommand(r.Options)}\n{string.Join("\n", r.Trace)}"));

    [Fact]
    public void TwoThousandSchedulesHoldEveryInvariant()
    {
        SimulationResult[] results = SimulationRunner.RunMany(1, 2000, All, new SimulationOptions());
        Assert.True(results.All(r => r.Passed), Explain(results));
        // The schedules did what they are for: every kind of event happened, many times over.
        foreach (string e in new[] { "power losses", "page activations lost", "flusher activations lost", "disk activations lost", "leases expired",
                     "stale commands fenced", "pages dirtied again", "flushes cut short", "fsyncs returned", "fsync pages reported lost", "unstable guard rejections", "writes refused under writeback",
                     "losses judged lost", "losses judged not lost", "stores faulted" })
        {
            Assert.True(results.Sum(r => r.Count(e)) >= 20, $"{e}: {results.Sum(r => r.Count(e))}");
        }
        foreach (string kind in new[] { "memory-bitflip", "transit-bitflip", "media-bitrot", "lost-write", "torn-write", "misdirected-write" })
        {
            Assert.True(results.Sum(r => r.Faults[kind].Detected) >= 20, $"{kind} detected: {results.Sum(r => r.Faults[kind].Detected)}");
        }
        // With the dirty log every loss judgment after a power loss is exact: none is conservative.
        Assert.Equal(0, results.Sum(r => r.Count("losses judged lost conservatively")));
        // A disk's command faults are each detected or written over before any load: never silent.
        foreach (string kind in new[] { "lost-write", "torn-write", "misdirected-write" })
        {
            Assert.All(results, r => Assert.Equal(r.Faults[kind].Injected, r.Faults[kind].Detected + r.Faults[kind].Masked));
        }
        // Under stable and bounce no guard rejection without a fault (an invariant); under unstable they happen.
        Assert.All(results.Where(r => r.Options.Policy != WritebackPolicy.Unstable), r => Assert.Equal(0, r.Count("unstable guard rejections")));
        // With tags cached at copy-in and after every store, no memory flip goes out unchecked under stable and bounce.
        Assert.All(results.Where(r => r.Options.Policy != WritebackPolicy.Unstable), r => Assert.Equal(0, r.Faults["memory-bitflip"].SilentInWindow));
    }

    [Fact]
    public void WithStoresLeavingPagesUntaggedAsLinuxDoesTheInvariantsStillHoldAndTheWindowShows()
    {
        SimulationResult[] results = SimulationRunner.RunMany(7001, 300, All, new SimulationOptions { StoreTags = false });
        Assert.True(results.All(r => r.Passed), Explain(results));
        Assert.True(results.Where(r => r.Options.Policy == WritebackPolicy.Stable).Sum(r => r.Faults["memory-bitflip"].SilentInWindow) > 0);
    }

    [Fact]
    public void OnSixtyFourBitGuardsTheInvariantsHoldAndNoMemoryFlipGoesOutUncheckedUnderStableOrBounce()
    {
        SimulationResult[] results = SimulationRunner.RunMany(9001, 300, All, new SimulationOptions { Guard = GuardKind.Crc64 });
        Assert.True(results.All(r => r.Passed), Explain(results));
        // Every fault kind met and caught on 16-byte tuples too, and the 2010 bug shows under unstable.
        foreach (string kind in new[] { "memory-bitflip", "transit-bitflip", "media-bitrot", "lost-write", "torn-write", "misdirected-write" })
        {
            Assert.True(results.Sum(r => r.Faults[kind].Detected) >= 10, $"{kind} detected: {results.Sum(r => r.Faults[kind].Detected)}");
        }
        Assert.True(results.Where(r => r.Options.Policy == WritebackPolicy.Unstable).Sum(r => r.Count("unstable guard rejections")) > 0);
        Assert.All(results.Where(r => r.Options.Policy != WritebackPolicy.Unstable), r => Assert.Equal(0, r.Faults["memory-bitflip"].SilentInWindow));
        Assert.Contains("--guard crc64", SimulationRunner.ReplayCommand(results[0].Options));
    }

    [Fact]
    public void WithoutTagsCachedAtCopyInTheInvariantsStillHold()
    {
        SimulationResult[] results = SimulationRunner.RunMany(5001, 300, All, new SimulationOptions { TagsAtCopyIn = false });
        Assert.True(results.All(r => r.Passed), Explain(results));
    }

    [Fact]
    public void ASeedReplaysExactly()
    {
        foreach (WritebackPolicy policy in All)
        {
            var o = new SimulationOptions { Seed = 4242, Policy = policy, KeepTrace = true };
            SimulationResult first = ProtocolSimulation.Run(o, ProtocolSimulation.ScratchDirectory(o.Seed));
            SimulationResult again = ProtocolSimulation.Run(o, ProtocolSimulation.ScratchDirectory(o.Seed));
            Assert.Equal(first.TraceHash, again.TraceHash);
            Assert.Equal(first.Trace, again.Trace);
            Assert.Equal(first.Counters, again.Counters);
            var other = ProtocolSimulation.Run(o with { Seed = 4243 }, ProtocolSimulation.ScratchDirectory(4243));
            Assert.NotEqual(first.TraceHash, other.TraceHash);
        }
    }

    [Fact]
    public void WithoutADirtyLogLossJudgmentsAfterAPowerLossAreConservativeAndTheInvariantsStillHold()
    {
        SimulationResult[] results = SimulationRunner.RunMany(7001, 400, All, new SimulationOptions { DirtyLog = false });
        Assert.True(results.All(r => r.Passed), Explain(results));
        Assert.True(results.Sum(r => r.Count("losses judged lost conservatively")) >= 20, $"{results.Sum(r => r.Count("losses judged lost conservatively"))}");
    }

    [Fact]
    public void FaultFreeCrashFreeSchedulesDetectNothing()
    {
        SimulationResult[] results = SimulationRunner.RunMany(9001, 200, All, new SimulationOptions { Faults = false, Crashes = false });
        Assert.True(results.All(r => r.Passed), Explain(results));
        Assert.All(results, r => Assert.All(r.Faults.Values, f => Assert.Equal(0, f.Injected + f.Detected)));
        Assert.Equal(0, results.Sum(r => r.Count("loads poisoned")));
    }

    [Fact]
    public void BadOptionsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimulationOptions { Steps = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimulationOptions { Pages = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => SimulationRunner.RunMany(1, 0, All, new SimulationOptions()));
    }
}
