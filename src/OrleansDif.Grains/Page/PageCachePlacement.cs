using System.Collections.Concurrent;
using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace OrleansDif.Grains;

/// <summary>
/// The volumes whose page cache is on this silo: the NBD front end in a silo registers the volumes it serves. A page
/// (or flusher) of such a volume that a call from this silo activates is activated here, as a host's page cache is
/// on the host that does the I/O. A silo-wide registration rather than a request-context hint: the hint travelled,
/// and was copied, with every call of the page I/O path (and every call those calls made).
/// </summary>
public sealed class LocalPageCaches
{
    private readonly ConcurrentDictionary<string, bool> _volumes = new(StringComparer.Ordinal);

    public void Serve(string volume) => _volumes[volume] = true;

    public bool Serves(string volume) => _volumes.ContainsKey(volume);
}

/// <summary>
/// Pages go to a random compatible silo, unless their volume's page cache is on the calling silo
/// (<see cref="LocalPageCaches"/>) or the call that activates one carries <see cref="PagePlacement.LocalKey"/>: then
/// to the calling silo.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class PageCachePlacement : PlacementStrategy
{
    public static readonly PageCachePlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class PageCachePlacementAttribute() : PlacementAttribute(PageCachePlacement.Instance);

public sealed class PageCachePlacementDirector(LocalPageCaches? local = null) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        SiloAddress[] silos = context.GetCompatibleSilos(target);
        if (silos.Length == 0)
        {
            throw new OrleansException("no silo can host a page grain");
        }
        string key = target.GrainIdentity.Key.ToString() ?? "";
        int slash = key.LastIndexOf('/');
        return Task.FromResult(WantsLocal(target, context, local, slash > 0 ? key[..slash] : key)
            ? context.LocalSilo : silos[Random.Shared.Next(silos.Length)]);
    }

    /// <summary>
    /// This silo keeps <paramref name="volume"/>'s page cache, or the activating call carries
    /// <see cref="PagePlacement.LocalKey"/>; and this silo can host the grain.
    /// </summary>
    public static bool WantsLocal(PlacementTarget target, IPlacementContext context, LocalPageCaches? local, string volume) =>
        (local?.Serves(volume) == true
         || target.RequestContextData is { } data && data.TryGetValue(PagePlacement.LocalKey, out object? v) && v is true)
        && context.LocalSiloStatus == SiloStatus.Active && context.GetCompatibleSilos(target).Contains(context.LocalSilo);
}
