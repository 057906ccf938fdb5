namespace OrleansDif.Grains.Tests;

[Collection(ClusterCollection.Name)]
public class BadInputTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    private static async Task Expect(StorageError error, Func<Task> call)
    {
        StorageException e = await Assert.ThrowsAsync<StorageException>(call);
        Assert.Equal(error, e.Error);
    }

    [Fact]
    public async Task PageRefusesBadWritesAndChangesNothing()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IPageGrain page = _grains.Page(v, 1);
        byte[] a = TestVolumes.Pattern(90);
        long version = (await page.Write(0, a, false)).Version;

        await Expect(StorageError.OutOfRange, () => page.Write(-1, [1], false));
        await Expect(StorageError.OutOfRange, () => page.Write(4000, new byte[200], false));
        await Expect(StorageError.EmptyBuffer, () => page.Write(0, [], false));
        await Expect(StorageError.BufferTooLarge, () => page.Write(0, new byte[4097], false));
        await Expect(StorageError.OutOfRange, () => page.Read(4095, 2));
        await Expect(StorageError.UnknownMapping, () => page.Store(12345, 0, [1], false));
        await Expect(StorageError.UnknownMapping, () => page.Unmap(12345));
        long ro = await page.Map(writable: false);
        await Expect(StorageError.ReadOnlyMapping, () => page.Store(ro, 0, [1], false));
        Assert.Equal(EndStatus.StaleWriteback, await page.EndWriteback(Guid.NewGuid(), true));

        PageInfo info = await page.GetInfo();
        Assert.Equal(version, info.Version);
        Assert.Equal(PageState.Dirty, info.State);
        Assert.Equal(a, await page.Read(0, 4096));
    }

    [Fact]
    public async Task UnknownVolumeAndPageBeyondVolume()
    {
        await Expect(StorageError.UnknownVolume, () => _grains.GetGrain<IPageGrain>("no-such-volume/0").Write(0, [1], false));
        await Expect(StorageError.UnknownVolume, () => _grains.GetGrain<IVolumeGrain>("no-such-volume").GetConfig());
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        await Expect(StorageError.OutOfRange, () => _grains.Page(v, v.Pages).Write(0, [1], false));
        await Expect(StorageError.OutOfRange, () => _grains.Flusher(v).Fsync(v.Pages - 1, 2));
    }

    [Fact]
    public async Task DiskRefusesMalformedCommands()
    {
        VolumeConfig v = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable);
        IDiskGrain disk = _grains.Disk(v, 0);
        long sectors = v.SectorsPerDisk;
        await Expect(StorageError.OutOfRange, () => disk.Write(sectors, new byte[512], new byte[8]));
        await Expect(StorageError.OutOfRange, () => disk.Read(sectors - 1, 2));
        await Expect(StorageError.PiCountMismatch, () => disk.Write(0, new byte[1024], new byte[8]));
        await Expect(StorageError.NotWholeSectors, () => disk.Write(0, new byte[700], new byte[16]));
        await Expect(StorageError.EmptyBuffer, () => disk.Write(0, [], []));
        Assert.Equal(0, (await disk.GetStats()).SectorsWritten);
    }

    [Theory]
    [InlineData("disks")]
    [InlineData("sectorSize")]
    [InlineData("piType")]
    [InlineData("pages")]
    [InlineData("id")]
    [InlineData("appTag")]
    [InlineData("mirrors")]
    public async Task InvalidVolumeConfigNamesTheField(string field)
    {
        var config = new VolumeConfig { Id = "bad-" + field };
        config = field switch
        {
            "disks" => config with { Disks = 1 },
            "sectorSize" => config with { SectorSize = 520 },
            "piType" => config with { PiType = 4 },
            "pages" => config with { Pages = 0 },
            "appTag" => config with { AppTag = 0xFFFF },
            "mirrors" => config with { Mirrors = 4 },
            _ => config with { Id = "bad id!" },
        };
        string key = field == "id" ? "bad-id" : config.Id;
        StorageException e = await Assert.ThrowsAsync<StorageException>(() => _grains.GetGrain<IVolumeGrain>(key).Create(config));
        Assert.Equal(StorageError.InvalidConfig, e.Error);
        Assert.Contains($"'{field}'", e.Message);
        await Expect(StorageError.UnknownVolume, () => _grains.GetGrain<IVolumeGrain>(key).GetConfig());
    }
}
