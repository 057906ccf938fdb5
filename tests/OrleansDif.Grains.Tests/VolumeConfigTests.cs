namespace OrleansDif.Grains.Tests;

public class VolumeConfigTests
{
    [Fact]
    public void PageAtInvertsLocate()
    {
        var v = new VolumeConfig { Id = "x", Pages = 100, Disks = 3, StripePages = 4, SectorSize = 512 };
        for (int p = 0; p < v.Pages; p++)
        {
            var (disk, lba) = v.Locate(p);
            for (int s = 0; s < v.SectorsPerPage; s++)
            {
                Assert.Equal(p, v.PageAt(disk, lba + s));
            }
        }
        Assert.Equal(-1, v.PageAt(3, 0));
        Assert.Equal(-1, v.PageAt(0, -1));
        Assert.Equal(-1, v.PageAt(0, v.SectorsPerDisk + 1000));
    }

    [Fact]
    public void VersionTagsNeverEscapeAndCompareAcrossTheWrap()
    {
        Assert.Equal(0, VolumeConfig.VersionTag(0));
        Assert.Equal(0xFFFE, VolumeConfig.VersionTag(0xFFFE));
        Assert.Equal(0, VolumeConfig.VersionTag(0xFFFF));    // never 0xFFFF, the escape value
        Assert.Equal(1, VolumeConfig.VersionTagDistance(VolumeConfig.VersionTag(0xFFFF), VolumeConfig.VersionTag(0xFFFE)));
        Assert.Equal(-1, VolumeConfig.VersionTagDistance(VolumeConfig.VersionTag(0xFFFE), VolumeConfig.VersionTag(0xFFFF)));
        Assert.Equal(0, VolumeConfig.VersionTagDistance(7, 7));
        Assert.Equal(-5, VolumeConfig.VersionTagDistance(VolumeConfig.VersionTag(100_000), VolumeConfig.VersionTag(100_005)));
        var plain = new VolumeConfig { Id = "x", VersionTags = false, AppTag = 0x1234 };
        Assert.Equal(0x1234, plain.AppTagFor(99));
        Assert.Equal(VolumeConfig.VersionTag(99), (plain with { VersionTags = true }).AppTagFor(99));
    }
}
