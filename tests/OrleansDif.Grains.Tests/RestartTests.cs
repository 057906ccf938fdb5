using Orleans.TestingHost;

namespace OrleansDif.Grains.Tests;

/// <summary>Its own cluster: stops every silo and starts a new cluster on the same data directory.</summary>
public sealed class RestartTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-restart-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task NothingSyncedIsLostAcrossAFullRestart()
    {
        VolumeConfig v;
        var expected = new Dictionary<int, byte[]>();
        TestCluster first = await ClusterFixture.StartAsync(_dir);
        try
        {
            v = await TestVolumes.CreateAsync(first.GrainFactory, WritebackPolicy.Stable, pages: 40);
            for (int p = 0; p < 40; p += 3)
            {
                expected[p] = TestVolumes.Pattern(500 + p);
                await first.GrainFactory.Page(v, p).Write(0, expected[p], false);
            }
            Assert.True((await first.GrainFactory.Flusher(v).Fsync(0, v.Pages)).Durable);
        }
        finally
        {
            await first.StopAllSilosAsync();
            await first.DisposeAsync();
        }

        TestCluster second = await ClusterFixture.StartAsync(_dir, faultInjection: false);
        try
        {
            // This cluster does not enable fault injection: every request is refused and changes nothing.
            StorageException refused = await Assert.ThrowsAsync<StorageException>(() => second.GrainFactory.Page(v, 0).InjectBitflip(1));
            Assert.Equal(StorageError.FaultInjectionDisabled, refused.Error);
            refused = await Assert.ThrowsAsync<StorageException>(() => second.GrainFactory.Disk(v, 0).InjectFault(FaultKind.MediaBitrot, 0, 1));
            Assert.Equal(StorageError.FaultInjectionDisabled, refused.Error);
            refused = await Assert.ThrowsAsync<StorageException>(() => second.GrainFactory.Flusher(v).InjectTransitBitflips(1));
            Assert.Equal(StorageError.FaultInjectionDisabled, refused.Error);
            Assert.Equal(v, await second.GrainFactory.GetGrain<IVolumeGrain>(v.Id).GetConfig());
            for (int p = 0; p < 40; p++)
            {
                byte[] want = expected.TryGetValue(p, out byte[]? b) ? b : new byte[4096];
                Assert.Equal(want, await second.GrainFactory.Page(v, p).Read(0, 4096));
            }
        }
        finally
        {
            await second.StopAllSilosAsync();
            await second.DisposeAsync();
        }
        foreach (string image in Directory.EnumerateFiles(_dir, "*.img"))
        {
            Assert.True(OrleansDif.Protection.Scrubber.Scrub(image).Clean, image);
        }
    }
}
