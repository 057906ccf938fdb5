using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace OrleansDif;

/// <summary>
/// The one place grain keys are built and read: a volume's grains are keyed by its id (volume, flusher) or by
/// "volume/number" (page, disk). Silos, clients and tests all reach grains through these. Page and disk references
/// are kept per grain factory (a reference is immutable and bound to its runtime): making one resolves the grain
/// interface by reflection, which cost more than the call itself on the page I/O path.
/// </summary>
public static class GrainKeys
{
    private const int MaxCachedPerFactory = 1 << 18; // beyond this (huge volumes), references are made per call

    private sealed class References
    {
        public readonly ConcurrentDictionary<(string Volume, int Number), IPageGrain> Pages = new();
        public readonly ConcurrentDictionary<(string Volume, int Number), IDiskGrain> Disks = new();
    }

    private static readonly ConditionalWeakTable<IGrainFactory, References> Cache = new();

    public static string Of(string volume, int number) => $"{volume}/{number}";

    public static IVolumeGrain Volume(this IGrainFactory factory, string volume) => factory.GetGrain<IVolumeGrain>(volume);

    public static IWritebackGrain Flusher(this IGrainFactory factory, string volume) => factory.GetGrain<IWritebackGrain>(volume);

    public static IPageGrain Page(this IGrainFactory factory, string volume, int page) =>
        Cached(factory, Cache.GetValue(factory, static _ => new References()).Pages, volume, page);

    public static IDiskGrain Disk(this IGrainFactory factory, string volume, int disk) =>
        Cached(factory, Cache.GetValue(factory, static _ => new References()).Disks, volume, disk);

    /// <summary>
    /// Copy <paramref name="copy"/> of disk <paramref name="disk"/> of a mirrored volume: copy 0 is the disk itself
    /// ("volume/disk", the mirror set's primary), copy c &gt; 0 is "volume/disk/c".
    /// </summary>
    public static IDiskGrain DiskCopy(this IGrainFactory factory, string volume, int disk, int copy) =>
        copy == 0 ? factory.Disk(volume, disk) : factory.GetGrain<IDiskGrain>(OfCopy(volume, disk, copy));

    public static string OfCopy(string volume, int disk, int copy) => copy == 0 ? Of(volume, disk) : $"{volume}/{disk}/{copy}";

    /// <summary>Splits a disk key, "volume/disk" (copy 0) or "volume/disk/copy".</summary>
    public static (string Volume, int Disk, int Copy) ParseDisk(string key)
    {
        var (head, last) = Parse(key);
        int slash = head.LastIndexOf('/');
        if (slash > 0 && int.TryParse(head.AsSpan(slash + 1), out int disk))
        {
            if (last <= 0)
            {
                throw new StorageException(StorageError.OutOfRange, $"grain key '{key}': a disk copy is numbered from 1");
            }
            return (head[..slash], disk, last);
        }
        return (head, last, 0);
    }

    private static T Cached<T>(IGrainFactory factory, ConcurrentDictionary<(string, int), T> cache, string volume, int number)
        where T : IGrainWithStringKey
    {
        if (cache.TryGetValue((volume, number), out T? reference))
        {
            return reference;
        }
        reference = factory.GetGrain<T>(Of(volume, number));
        if (cache.Count < MaxCachedPerFactory)
        {
            cache.TryAdd((volume, number), reference);
        }
        return reference;
    }

    /// <summary>Splits a "volume/number" key.</summary>
    public static (string Volume, int Number) Parse(string key)
    {
        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), out int n))
        {
            throw new StorageException(StorageError.OutOfRange, $"grain key '{key}' is not 'volume/number'");
        }
        return (key[..slash], n);
    }
}
