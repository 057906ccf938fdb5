using System.Buffers.Binary;

namespace OrleansDif.Protection.Tests;

/// <summary>The scheme, the copy-in, the image and the disk cache on the NVMe 64b Guard format (16-byte tuples).</summary>
public sealed class Guard64SchemeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-g64-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ProtectionScheme Scheme(int size, PiType type, ushort appTag = 0x0D1F) =>
        new(SectorFormat.Of(size, guard64: true), type) { AppTag = appTag, Checks = PiCheckFlags.All };

    /// <summary>A tuple built by hand from the format's definition: the bitwise CRC-64/NVME, big-endian fields.</summary>
    private static byte[] Tuple(ReadOnlySpan<byte> sector, ushort app, ulong reference)
    {
        byte[] t = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(t, Crc64Nvme.Reference(sector));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(8), app);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(10), (ushort)(reference >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(12), (uint)reference);
        return t;
    }

    [Theory]
    [InlineData(512, PiType.Type1)]
    [InlineData(4096, PiType.Type1)]
    [InlineData(512, PiType.Type3)]
    public void GenerateWritesTheFormatsTuplesAndVerifyAcceptsThem(int size, PiType type)
    {
        ProtectionScheme scheme = Scheme(size, type);
        Assert.Equal(16, scheme.Format.TupleSize);
        Assert.Equal(size + 16, scheme.Format.BlockSize);
        byte[] data = new byte[size * 4];
        new Random(size).NextBytes(data);
        long lba = 0x1_0000_0005; // above 32 bits: the 48-bit reference tag keeps it
        byte[] pi = new byte[4 * 16];
        scheme.Generate(data, pi, lba);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(Tuple(data.AsSpan(i * size, size), 0x0D1F, (ulong)(lba + i) & 0xFFFF_FFFF_FFFF), pi.AsSpan(i * 16, 16).ToArray());
            Assert.Equal(Crc64Nvme.Reference(data.AsSpan(i * size, size)), scheme.GuardAt(pi, i));
            Assert.Equal(0x0D1F, scheme.AppTagAt(pi, i));
        }
        Assert.Null(scheme.Verify(data, pi, lba));

        // The guards cached at copy-in make the same tuples.
        ulong[] guards = new ulong[4];
        byte[] page = new byte[size * 4];
        PageCopyIn.CopyIn(data, page, 0, size, guards, guard64: true);
        byte[] pi2 = new byte[4 * 16];
        scheme.WriteTuples(guards, pi2, lba);
        Assert.Equal(pi, pi2);
        Assert.Equal(data, page);
    }

    [Fact]
    public void TypeTwoReferenceTagsRunFromTheCommandsTagPastThirtyTwoBitsStoredOrInterleaved()
    {
        ProtectionScheme scheme = Scheme(512, PiType.Type2);
        byte[] data = new byte[1024];
        new Random(5).NextBytes(data);
        byte[] pi = new byte[32];
        scheme.Generate(data, pi, 0, commandRefTag: 0xFFFF_FFFF);
        Assert.Equal(Tuple(data.AsSpan(512, 512), 0x0D1F, 0x1_0000_0000), pi.AsSpan(16, 16).ToArray()); // no wrap at 32 bits
        Assert.Null(scheme.Verify(data, pi, 0, 0xFFFF_FFFF));
        byte[] blocks = new byte[2 * 528];
        scheme.Format.Interleave(2, data, pi, blocks);
        var errors = new List<PiError>();
        Assert.Equal(0, scheme.VerifyInterleaved(blocks, 0, errors, 0xFFFF_FFFF));
        Assert.Equal(2, scheme.VerifyInterleaved(blocks, 0, errors, 0x10));
        Assert.All(errors, e => Assert.Equal(PiCheck.RefTag, e.Check));
    }

    [Fact]
    public void EachCheckFailsWithItsSixtyFourBitValues()
    {
        ProtectionScheme scheme = Scheme(512, PiType.Type1);
        byte[] data = new byte[1024];
        new Random(3).NextBytes(data);
        byte[] pi = new byte[32];
        scheme.Generate(data, pi, 100);

        byte[] flipped = (byte[])data.Clone();
        flipped[700] ^= 1;
        PiError guard = scheme.Verify(flipped, pi, 100)!.Value;
        Assert.Equal((PiCheck.Guard, 101L), (guard.Check, guard.Lba));
        Assert.Equal(Crc64Nvme.Reference(flipped.AsSpan(512, 512)), guard.Expected);  // the whole 64 bits
        Assert.Equal(Crc64Nvme.Reference(data.AsSpan(512, 512)), guard.Actual);

        byte[] badRef = (byte[])pi.Clone();
        badRef[16 + 15] ^= 1;
        Assert.Equal(PiCheck.RefTag, scheme.Verify(data, badRef, 100)!.Value.Check);
        Assert.Null((scheme with { Checks = PiCheckFlags.Guard }).Verify(data, badRef, 100));

        byte[] badApp = (byte[])pi.Clone();
        badApp[8] ^= 1;
        Assert.Equal(PiCheck.AppTag, scheme.Verify(data, badApp, 100)!.Value.Check);

        // Application tag 0xFFFF escapes Type 1; Type 3 needs the reference tag all ones too.
        byte[] escaped = (byte[])pi.Clone();
        escaped.AsSpan(0, 8).Fill(0);
        escaped[8] = escaped[9] = 0xFF;
        Assert.True(scheme.IsEscapedAt(escaped, 0));
        Assert.Null(scheme.Verify(data, escaped, 100));
        Assert.False(Scheme(512, PiType.Type3).IsEscapedAt(escaped, 0));
        escaped.AsSpan(10, 6).Fill(0xFF);
        Assert.True(Scheme(512, PiType.Type3).IsEscapedAt(escaped, 0));

        Assert.Equal(DifError.PiCountMismatch, Assert.Throws<DifArgumentException>(() => scheme.Verify(data, new byte[16], 0)).Error);
        Assert.Equal(DifError.BadGeometry, Assert.Throws<DifArgumentException>(() => new SectorFormat(512, 12)).Error);
    }

    [Fact]
    public async Task AnImageAndItsCacheCarrySixteenByteTuplesAndScrubReadsThem()
    {
        string path = Path.Combine(_dir, "g64.img");
        ProtectionScheme scheme = Scheme(512, PiType.Type1);
        using (DiskImage image = DiskImage.Create(path, scheme.Format, PiType.Type1, 64))
        {
            Assert.Equal(64L * 528, new FileInfo(path).Length);
            using var disk = new CachedDisk(image, 8);
            byte[] data = new byte[4096];
            new Random(9).NextBytes(data);
            byte[] pi = new byte[8 * 16];
            scheme.Generate(data, pi, 16);
            Assert.Equal(FencedWrite.Accepted, disk.WritePages(16, data, pi, [5]));
            await disk.FlushAsync();
            byte[] back = new byte[4096];
            byte[] backPi = new byte[8 * 16];
            disk.Read(16, back, backPi);
            Assert.Equal(data, back);
            Assert.Equal(pi, backPi);
            Assert.Throws<DifArgumentException>(() => disk.Write(16, data, new byte[8 * 8])); // 8-byte tuples do not fit
        }
        Assert.Equal("crc64", DiskImageInfo.TryLoad(path)!.Guard);
        using (DiskImage reopened = DiskImage.Open(path, writable: false))
        {
            Assert.True(reopened.Format.Guard64);
        }
        ScrubReport report = Scrubber.Scrub(path);
        Assert.True(report.Clean);
        Assert.Equal(64L, report.Sectors);

        // A sidecar naming another guard is a bad image, not a geometry puzzle.
        File.WriteAllText(DiskImageInfo.SidecarPath(path), File.ReadAllText(DiskImageInfo.SidecarPath(path)).Replace("crc64", "CRC-64"));
        Assert.Equal(DifError.BadImage, Assert.Throws<DifArgumentException>(() => DiskImage.Open(path, writable: false)).Error);
    }
}
