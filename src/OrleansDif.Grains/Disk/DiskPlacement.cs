using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace OrleansDif.Grains;

/// <summary>
/// Disk d of a volume goes to silo d mod N of the compatible silos in address order (copy c of a mirrored disk d to
/// silo d + c mod N): a volume's disks are
/// spread evenly over the cluster (a hash could put two of three disks on one silo), and the same disk lands
/// on the same silo for as long as the membership is the same. A key without a number (a volume's flusher)
/// goes by a stable hash of the key, so the flushers of many volumes spread over the silos too, unless the calling
/// silo keeps that volume's page cache (<see cref="LocalPageCaches"/>, or a call carrying <see cref="PagePlacement.LocalKey"/>):
/// then it goes where those pages are.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class DiskSpreadPlacement : PlacementStrategy
{
    public static readonly DiskSpreadPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class DiskSpreadPlacementAttribute() : PlacementAttribute(DiskSpreadPlacement.Instance);

public sealed class DiskSpreadPlacementDirector(LocalPageCaches? local = null) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        SiloAddress[] silos = context.GetCompatibleSilos(target).OrderBy(s => s.ToString(), StringComparer.Ordinal).ToArray();
        if (silos.Length == 0)
        {
            throw new OrleansException("no silo can host a disk grain");
        }
        string key = target.GrainIdentity.Key.ToString() ?? "";
        int slash = key.LastIndexOf('/');
        int n = -1;
        bool numbered = slash >= 0 && int.TryParse(key.AsSpan(slash + 1), out n) && n >= 0;
        if (numbered && key.IndexOf('/') != slash)
        {
            // Copy c of disk d ("volume/d/c") goes c silos further on than the disk: a mirror set's copies on
            // different silos while there are as many silos as copies.
            var (_, disk, copy) = GrainKeys.ParseDisk(key);
            n = disk + copy;
        }
        if (!numbered && PageCachePlacementDirector.WantsLocal(target, context, local, key))
        {
            // A volume's flusher activated for pages placed on the calling silo (the NBD front end's) goes with them:
            // the flusher and its page cache talk in one process, as writeback and the page cache share a host.
            return Task.FromResult(context.LocalSilo);
        }
        int index = numbered ? n : (int)(StableHash(key) & int.MaxValue);
        return Task.FromResult(silos[index % silos.Length]);
    }

    /// <summary>FNV-1a: the same on every silo and in every process, unlike <see cref="string.GetHashCode()"/>.</summary>
    private static uint StableHash(string key)
    {
        uint hash = 2166136261;
        foreach (char c in key)
        {
            hash = (hash ^ c) * 16777619;
        }
        return hash;
    }
}
