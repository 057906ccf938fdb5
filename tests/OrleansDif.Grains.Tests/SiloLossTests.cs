using Orleans.TestingHost;
using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests;

[CollectionDefinition(Name)]
public sealed class SiloLossCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "silo-loss";
}

/// <summary>Kills silos of a cluster of its own (the shared one keeps its three silos).</summary>
[Collection(SiloLossCollection.Name)]
public class SiloLossTests(ClusterFixture fixture)
{
    private readonly IGrainFactory _grains = fixture.Grains;

    [Fact]
    public async Task FlusherSiloDiesMidWritebackLeaseExpiresAndThePageIsWrittenAgain()
    {
        TestCluster cluster = fixture.Cluster;
        // A volume whose flusher is on a secondary silo that holds none of its two disks (disks go to the
        // first two silos in address order), and a page on another silo.
        string[] ordered = cluster.GetActiveSilos().Select(s => s.SiloAddress.ToString()).Order(StringComparer.Ordinal).ToArray();
        string primary = cluster.Primary!.SiloAddress.ToString();
        VolumeConfig? v = null;
        SiloHandle? victim = null;
        for (int attempt = 0; attempt < 30 && victim is null; attempt++)
        {
            VolumeConfig candidate = await TestVolumes.CreateAsync(_grains, WritebackPolicy.Stable, c => c with { LeaseMs = 300 });
            await _grains.Flusher(candidate).GetStats(); // activates it
            string flusherSilo = await FlusherSilo(candidate);
            if (flusherSilo != primary && flusherSilo != ordered[0] && flusherSilo != ordered[1])
            {
                v = candidate;
                victim = cluster.GetActiveSilos().First(s => s.SiloAddress.ToString() == flusherSilo);
            }
        }
        Assert.NotNull(victim);
        string victimAddress = victim.SiloAddress.ToString();
        int page = -1;
        for (int p = 0; p < v!.Pages && page < 0; p++)
        {
            if ((await _grains.Page(v, p).GetInfo()).Silo != victimAddress)
            {
                page = p;
            }
        }
        Assert.True(page >= 0);
        byte[] data = TestVolumes.Pattern(4242);
        await _grains.Page(v, page).Write(0, data, false);

        StepHooks.Gate begun = StepHooks.Arm(v.Id, StepHooks.WritebackBegun);
        StepHooks.Gate expired = StepHooks.Arm(v.Id, StepHooks.LeaseExpired, autoRelease: true);
        Task<FsyncResult> fsync = _grains.Flusher(v).Fsync(0, v.Pages);
        await begun.Reached.Within();
        Assert.Equal(PageState.Writeback, (await _grains.Page(v, page).GetInfo()).State);

        await cluster.KillSiloAsync(victim);
        await cluster.WaitForLivenessToStabilizeAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => fsync.Within(60)); // the flusher died with its silo

        await expired.Reached.Within(60);        // the page did not stay stuck
        PageInfo info = await _grains.Page(v, page).GetInfo();
        Assert.Equal(PageState.Dirty, info.State);
        // A new flusher activation learnt of the page from it, and writes it again.
        FsyncResult again = await _grains.Flusher(v).Fsync(0, v.Pages);
        Assert.True(again.Durable, again.Error);
        Assert.Equal(1, again.Pages);
        Assert.Equal(data, await _grains.OnDisk(v, page));
        Assert.Equal(PageState.Clean, (await _grains.Page(v, page).GetInfo()).State);
    }

    private async Task<string> FlusherSilo(VolumeConfig v)
    {
        // The flusher reports no silo of its own; ask the management grain where it lives.
        var management = _grains.GetGrain<IManagementGrain>(0);
        var grainId = ((GrainReference)_grains.Flusher(v)).GrainId;
        foreach (SiloAddress silo in (await management.GetHosts(onlyActive: true)).Keys)
        {
            var grains = await management.GetDetailedGrainStatistics(null, [silo]);
            if (grains.Any(g => g.GrainId == grainId))
            {
                return silo.ToString();
            }
        }
        return "";
    }
}
