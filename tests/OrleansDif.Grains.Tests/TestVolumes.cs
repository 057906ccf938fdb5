namespace OrleansDif.Grains.Tests;

internal static class TestVolumes
{
    private static int s_next;

    /// <summary>Creates a fresh volume. Background writeback is off unless asked for: only fsync writes back.</summary>
    public static async Task<VolumeConfig> CreateAsync(IGrainFactory grains, WritebackPolicy policy,
        Func<VolumeConfig, VolumeConfig>? tweak = null, int pages = 64)
    {
        var config = new VolumeConfig
        {
            Id = $"v{Interlocked.Increment(ref s_next)}-{policy.ToString().ToLowerInvariant()}-{Guid.NewGuid():N}"[..30],
            Pages = pages,
            Policy = policy,
            DirtyAgeMs = 600_000,
            DirtyThreshold = 10_000,
            UnstableDelayMs = 0,
        };
        config = tweak?.Invoke(config) ?? config;
        await grains.GetGrain<IVolumeGrain>(config.Id).Create(config);
        return config;
    }

    public static IPageGrain Page(this IGrainFactory grains, VolumeConfig v, int page) =>
        GrainKeys.Page(grains, v.Id, page);

    public static IDiskGrain Disk(this IGrainFactory grains, VolumeConfig v, int disk) =>
        GrainKeys.Disk(grains, v.Id, disk);

    public static IWritebackGrain Flusher(this IGrainFactory grains, VolumeConfig v) =>
        GrainKeys.Flusher(grains, v.Id);

    public static byte[] Pattern(int seed, int length = VolumeConfig.PageSize)
    {
        byte[] b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>What the disk holds for a page, read straight from its disk grain.</summary>
    public static async Task<byte[]> OnDisk(this IGrainFactory grains, VolumeConfig v, int page)
    {
        var (disk, lba) = v.Locate(page);
        DiskReadResult r = await grains.Disk(v, disk).Read(lba, v.SectorsPerPage);
        return r.Data;
    }

    /// <summary>
    /// Writes a page's sectors again straight to its disk (escaped tuples: no version) and flushes, so that a test's
    /// injected damage leaves the image scrubbing clean when the collection ends.
    /// </summary>
    public static async Task RewriteOnDisk(this IGrainFactory grains, VolumeConfig v, int page, int seed)
    {
        var (d, lba) = v.Locate(page);
        var scheme = new Protection.ProtectionScheme(new Protection.SectorFormat(v.SectorSize), (Protection.PiType)v.PiType) { AppTag = 0xFFFF };
        byte[] data = Pattern(seed);
        byte[] pi = new byte[v.SectorsPerPage * 8];
        scheme.Generate(data, pi, lba);
        Assert.True((await grains.Disk(v, d).Write(lba, data, pi)).Accepted);
        await grains.Disk(v, d).Flush();      // from the disk's cache onto the medium, where scrub reads
    }

    /// <summary>Bounded wait for a step the test armed: fails the test rather than hanging it.</summary>
    public static Task Within(this Task task, int seconds = 30) => task.WaitAsync(TimeSpan.FromSeconds(seconds));

    public static Task<T> Within<T>(this Task<T> task, int seconds = 30) => task.WaitAsync(TimeSpan.FromSeconds(seconds));
}
