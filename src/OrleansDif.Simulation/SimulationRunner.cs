namespace OrleansDif.Simulation;

/// <summary>Many seeded schedules, spread over the cores; each replays alone from its seed and options.</summary>
public static class SimulationRunner
{
    /// <summary>
    /// Runs <paramref name="schedules"/> schedules with seeds <paramref name="firstSeed"/>, +1, ...; with more than one
    /// policy, schedule i runs policy i mod their count. Results in seed order.
    /// </summary>
    public static SimulationResult[] RunMany(int firstSeed, int schedules, IReadOnlyList<WritebackPolicy> policies, SimulationOptions template,
        int parallelism = 0, CancellationToken cancellationToken = default)
    {
        if (schedules < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(schedules), schedules, "at least one schedule");
        }
        if (policies.Count == 0)
        {
            throw new ArgumentException("at least one policy", nameof(policies));
        }
        var results = new SimulationResult[schedules];
        var options = new ParallelOptions
        {
            MaxDegreeOfParallelism = parallelism > 0 ? parallelism : Environment.ProcessorCount,
            CancellationToken = cancellationToken,
        };
        Parallel.For(0, schedules, options, i =>
        {
            int seed = firstSeed + i;
            SimulationOptions o = template with { Seed = seed, Policy = policies[i % policies.Count] };
            results[i] = ProtocolSimulation.Run(o, ProtocolSimulation.ScratchDirectory(seed));
        });
        return results;
    }

    /// <summary>The command that replays one schedule exactly.</summary>
    public static string ReplayCommand(SimulationOptions o) =>
        $"orleansdif simulate --seed {o.Seed} --policy {o.Policy.ToString().ToLowerInvariant()} --steps {o.Steps} --pages {o.Pages}"
        + (o.TagsAtCopyIn ? "" : " --no-tag-cache") + (o.StoreTags ? "" : " --no-store-tags") + (o.DirtyLog ? "" : " --no-dirty-log") + (o.Guard == GuardKind.Crc64 ? " --guard crc64" : "") + (o.Faults ? "" : " --no-faults") + (o.Crashes ? "" : " --no-crashes") + " --schedules 1";
}
