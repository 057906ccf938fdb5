using System.Net;
using Orleans.Runtime.Placement;
using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests.Page;

/// <summary>Where pages and flushers are placed: the local-page hint, and spreading without it (no cluster).</summary>
public sealed class PlacementTests
{
    private static readonly SiloAddress[] Silos =
        [.. Enumerable.Range(0, 3).Select(i => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111 + i), 1))];

    private sealed class Context(SiloAddress local) : IPlacementContext
    {
        public SiloAddress LocalSilo => local;
        public SiloStatus LocalSiloStatus => SiloStatus.Active;
        public SiloAddress[] GetCompatibleSilos(PlacementTarget target) => Silos;
        public IReadOnlyDictionary<ushort, SiloAddress[]> GetCompatibleSilosWithVersions(PlacementTarget target) =>
            new Dictionary<ushort, SiloAddress[]> { [0] = Silos };
    }

    private static PlacementTarget Target(string type, string key, bool local) => new(
        GrainId.Create(type, key),
        local ? new Dictionary<string, object> { [PagePlacement.LocalKey] = true } : [],
        default, 0);

    [Fact]
    public async Task APageActivatedWithTheLocalHintGoesToTheCallingSilo()
    {
        var director = new PageCachePlacementDirector();
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(Silos[2], await director.OnAddActivation(PageCachePlacement.Instance, Target("difpage", $"v/{i}", true), new Context(Silos[2])));
        }
    }

    [Fact]
    public async Task PagesWithoutTheHintSpreadOverTheSilos()
    {
        var director = new PageCachePlacementDirector();
        var used = new HashSet<SiloAddress>();
        for (int i = 0; i < 200; i++)
        {
            used.Add(await director.OnAddActivation(PageCachePlacement.Instance, Target("difpage", $"v/{i}", false), new Context(Silos[0])));
        }
        Assert.Equal(3, used.Count); // random over 3 silos: all three are hit in 200 placements but with chance 3·(2/3)^200
    }

    [Fact]
    public async Task AFlusherFollowsTheHintAndDisksNeverDo()
    {
        var director = new DiskSpreadPlacementDirector();
        var here = new Context(Silos[1]);
        Assert.Equal(Silos[1], await director.OnAddActivation(DiskSpreadPlacement.Instance, Target("writeback", "vol7", true), here));
        SiloAddress spread = await director.OnAddActivation(DiskSpreadPlacement.Instance, Target("writeback", "vol7", false), here);
        Assert.Equal(spread, await director.OnAddActivation(DiskSpreadPlacement.Instance, Target("writeback", "vol7", false), new Context(Silos[2])));
        for (int disk = 0; disk < 3; disk++)
        {
            // Disk d on silo d mod 3 in address order, whoever activates it and with whatever hint.
            Assert.Equal(Silos[disk], await director.OnAddActivation(DiskSpreadPlacement.Instance, Target("disk", $"vol7/{disk}", true), here));
        }
    }

    [Fact]
    public async Task PagesAndTheFlusherOfAVolumeWhosePageCacheIsOnTheCallingSiloStayThereAndItsDisksStillSpread()
    {
        var caches = new LocalPageCaches();
        caches.Serve("vol7");
        var pages = new PageCachePlacementDirector(caches);
        var here = new Context(Silos[1]);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(Silos[1], await pages.OnAddActivation(PageCachePlacement.Instance, Target("difpage", $"vol7/{i}", false), here));
        }
        var other = new HashSet<SiloAddress>();
        for (int i = 0; i < 200; i++)
        {
            other.Add(await pages.OnAddActivation(PageCachePlacement.Instance, Target("difpage", $"vol8/{i}", false), here));
        }
        Assert.Equal(3, other.Count); // a volume this silo does not serve spreads as before
        var spread = new DiskSpreadPlacementDirector(caches);
        Assert.Equal(Silos[1], await spread.OnAddActivation(DiskSpreadPlacement.Instance, Target("writeback", "vol7", false), here));
        for (int disk = 0; disk < 3; disk++)
        {
            Assert.Equal(Silos[disk], await spread.OnAddActivation(DiskSpreadPlacement.Instance, Target("disk", $"vol7/{disk}", false), here));
        }
    }
}
