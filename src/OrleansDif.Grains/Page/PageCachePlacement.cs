using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace OrleansDif.Grains;

/// <summary>
/// Pages go to a random compatible silo, unless the call that activates one carries <see cref="PagePlacement.LocalKey"/>:
/// then to the calling silo (the NBD front end in a silo keeps the pages it serves next to it, as a page cache is).
/// </summary>
[GenerateSerializer, Immutable]
public sealed class PageCachePlacement : PlacementStrategy
{
    public static readonly PageCachePlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class PageCachePlacementAttribute() : PlacementAttribute(PageCachePlacement.Instance);

public sealed class PageCachePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        SiloAddress[] silos = context.GetCompatibleSilos(target);
        if (silos.Length == 0)
        {
            throw new OrleansException("no silo can host a page grain");
        }
        return Task.FromResult(WantsLocal(target, context) ? context.LocalSilo : silos[Random.Shared.Next(silos.Length)]);
    }

    /// <summary>The activating call carries <see cref="PagePlacement.LocalKey"/> and this silo can host the grain.</summary>
    public static bool WantsLocal(PlacementTarget target, IPlacementContext context) =>
        target.RequestContextData is { } data && data.TryGetValue(PagePlacement.LocalKey, out object? v) && v is true
        && context.LocalSiloStatus == SiloStatus.Active && context.GetCompatibleSilos(target).Contains(context.LocalSilo);
}
