namespace OrleansDif.Grains;

/// <summary>
/// A grain that does nothing: the cluster's ceiling in grain calls per second. Keyed and placed like page
/// grains (one per key, spread over the silos), so a ping crosses the same hops a page write does.
/// </summary>
public sealed class PingGrain : Grain, IPingGrain
{
    public Task<int> Ping(int value) => Task.FromResult(value);
}
