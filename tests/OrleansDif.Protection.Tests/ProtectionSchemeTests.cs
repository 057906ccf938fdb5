namespace OrleansDif.Protection.Tests;

public class ProtectionSchemeTests
{
    public static TheoryData<int, PiType> Formats()
    {
        var data = new TheoryData<int, PiType>();
        foreach (int size in new[] { 512, 4096 })
        {
            foreach (PiType type in Enum.GetValues<PiType>())
            {
                data.Add(size, type);
            }
        }
        return data;
    }

    private static (byte[] Data, byte[] Pi, ProtectionScheme Scheme) Generate(int size, PiType type, int sectors, long lba,
        ushort appTag = 0x1234, uint? commandRef = null)
    {
        var scheme = new ProtectionScheme(new SectorFormat(size), type) { AppTag = appTag, Checks = PiCheckFlags.All };
        byte[] data = new byte[size * sectors];
        new Random(size + (int)type + sectors).NextBytes(data);
        byte[] pi = new byte[PiTuple.Size * sectors];
        scheme.Generate(data, pi, lba, commandRef);
        return (data, pi, scheme);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void GenerateThenVerifyRoundTrips(int size, PiType type)
    {
        var (data, pi, scheme) = Generate(size, type, 8, 1000, commandRef: 77);
        Assert.Null(scheme.Verify(data, pi, 1000, 77));
        for (int i = 0; i < 8; i++)
        {
            PiTuple t = PiTuple.Read(pi.AsSpan(i * 8, 8));
            Assert.Equal(Crc16Reference.Compute(data.AsSpan(i * size, size)), t.Guard);
            Assert.Equal(0x1234, t.AppTag);
            uint expectedRef = type == PiType.Type2 ? 77u + (uint)i : 1000u + (uint)i;
            Assert.Equal(expectedRef, t.RefTag);
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void EverySingleBitFlipInDataIsAGuardErrorAtItsLba(int size, PiType type)
    {
        var (data, pi, scheme) = Generate(size, type, 4, 50);
        var rng = new Random(9);
        for (int trial = 0; trial < 64; trial++)
        {
            int bit = rng.Next(data.Length * 8);
            data[bit / 8] ^= (byte)(1 << (bit % 8));
            PiError? e = scheme.Verify(data, pi, 50);
            data[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotNull(e);
            Assert.Equal(PiCheck.Guard, e.Value.Check);
            Assert.Equal(50 + bit / 8 / size, e.Value.Lba);
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void BitFlipsInEachTupleFieldAreReportedWithTheRightCheck(int size, PiType type)
    {
        var (data, pi, scheme) = Generate(size, type, 4, 8);
        // tuple byte -> field: 0-1 guard, 2-3 app, 4-7 ref
        for (int sector = 0; sector < 4; sector++)
        {
            for (int b = 0; b < 8; b++)
            {
                for (int bit = 0; bit < 8; bit++)
                {
                    int at = sector * 8 + b;
                    pi[at] ^= (byte)(1 << bit);
                    PiError? e = scheme.Verify(data, pi, 8);
                    pi[at] ^= (byte)(1 << bit);
                    PiCheck expected = b < 2 ? PiCheck.Guard : b < 4 ? PiCheck.AppTag : PiCheck.RefTag;
                    if (expected == PiCheck.RefTag && type == PiType.Type3)
                    {
                        Assert.Null(e); // Type 3 does not check the reference tag
                        continue;
                    }
                    Assert.NotNull(e);
                    Assert.Equal(expected, e.Value.Check);
                    Assert.Equal(8 + sector, e.Value.Lba);
                }
            }
        }
    }

    [Theory]
    [InlineData(PiType.Type1)]
    [InlineData(PiType.Type2)]
    public void ReferenceTagOffByOneIsReported(PiType type)
    {
        var (data, pi, scheme) = Generate(512, type, 2, 100, commandRef: 100);
        PiError? e = scheme.Verify(data, pi, 101, 101);
        Assert.NotNull(e);
        Assert.Equal(PiCheck.RefTag, e.Value.Check);
        Assert.Equal(101u, e.Value.Expected);
        Assert.Equal(100u, e.Value.Actual);
        Assert.Equal(101, e.Value.Lba);
    }

    [Fact]
    public void ChecksRunInOrderGuardThenAppThenRef()
    {
        var (data, pi, scheme) = Generate(512, PiType.Type1, 1, 0);
        new PiTuple(0, 0x0BAD, 999).Write(pi);
        data[0] ^= 1;
        Assert.Equal(PiCheck.Guard, scheme.Verify(data, pi, 0)!.Value.Check);
        new PiTuple(Crc16Reference.Compute(data), 0x0BAD, 999).Write(pi);
        Assert.Equal(PiCheck.AppTag, scheme.Verify(data, pi, 0)!.Value.Check);
        new PiTuple(Crc16Reference.Compute(data), 0x1234, 999).Write(pi);
        Assert.Equal(PiCheck.RefTag, scheme.Verify(data, pi, 0)!.Value.Check);
    }

    [Theory]
    [InlineData(PiType.Type1)]
    [InlineData(PiType.Type2)]
    public void AppTagFFFFEscapesTypes1And2(PiType type)
    {
        var scheme = new ProtectionScheme(SectorFormat.Sector512, type) { Checks = PiCheckFlags.All };
        byte[] data = new byte[512];
        data[3] = 9;
        byte[] pi = new byte[8];
        new PiTuple(0xDEAD, 0xFFFF, 0x12345678).Write(pi); // wrong guard and ref: escaped all the same
        Assert.Null(scheme.Verify(data, pi, 5));
    }

    [Fact]
    public void Type3NeedsBothEscapes()
    {
        var scheme = new ProtectionScheme(SectorFormat.Sector512, PiType.Type3) { Checks = PiCheckFlags.All };
        byte[] data = new byte[512];
        data[3] = 9;
        byte[] pi = new byte[8];
        new PiTuple(0xDEAD, 0xFFFF, 0xFFFF_FFFF).Write(pi);
        Assert.Null(scheme.Verify(data, pi, 5));
        // Only the application tag escaped: still checked, and the guard is wrong.
        new PiTuple(0xDEAD, 0xFFFF, 0x0000_0005).Write(pi);
        PiError? e = scheme.Verify(data, pi, 5);
        Assert.NotNull(e);
        Assert.Equal(PiCheck.Guard, e.Value.Check);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void NeverWrittenSectorsPass(int size, PiType type)
    {
        var scheme = new ProtectionScheme(new SectorFormat(size), type) { Checks = PiCheckFlags.All, AppTag = 7 };
        byte[] data = new byte[size * 3];
        byte[] pi = new byte[24];
        Array.Fill(pi, (byte)0xFF);
        Assert.Null(scheme.Verify(data, pi, 12345));
    }

    [Fact]
    public void AppTagMaskComparesOnlyMaskedBits()
    {
        var (data, pi, scheme) = Generate(512, PiType.Type1, 1, 0, appTag: 0x12AB);
        var masked = scheme with { AppTag = 0x1200, AppMask = 0xFF00 };
        Assert.Null(masked.Verify(data, pi, 0));
        var strict = scheme with { AppTag = 0x1200, AppMask = 0xFFFF };
        PiError? e = strict.Verify(data, pi, 0);
        Assert.Equal(PiCheck.AppTag, e!.Value.Check);
        Assert.Equal(0x1200u, e.Value.Expected);
        Assert.Equal(0x12ABu, e.Value.Actual);
        var unchecked_ = scheme with { AppTag = 0x1200, Checks = PiCheckFlags.Guard | PiCheckFlags.RefTag };
        Assert.Null(unchecked_.Verify(data, pi, 0));
    }

    [Fact]
    public void FailuresMapToScsiAndNvmeCodes()
    {
        Assert.Equal(new ScsiSense(0x0B, 0x10, 0x01), new PiError(0, PiCheck.Guard, 0, 0).Scsi);
        Assert.Equal(new ScsiSense(0x0B, 0x10, 0x02), new PiError(0, PiCheck.AppTag, 0, 0).Scsi);
        Assert.Equal(new ScsiSense(0x0B, 0x10, 0x03), new PiError(0, PiCheck.RefTag, 0, 0).Scsi);
        Assert.Equal(new NvmeStatus(2, 0x82), new PiError(0, PiCheck.Guard, 0, 0).Nvme);
        Assert.Equal(new NvmeStatus(2, 0x83), new PiError(0, PiCheck.AppTag, 0, 0).Nvme);
        Assert.Equal(new NvmeStatus(2, 0x84), new PiError(0, PiCheck.RefTag, 0, 0).Nvme);
    }

    [Fact]
    public void TuplesAreBigEndian()
    {
        byte[] b = new byte[8];
        new PiTuple(0xD0DB, 0x1234, 0x89ABCDEF).Write(b);
        Assert.Equal(new byte[] { 0xD0, 0xDB, 0x12, 0x34, 0x89, 0xAB, 0xCD, 0xEF }, b);
        Assert.Equal(new PiTuple(0xD0DB, 0x1234, 0x89ABCDEF), PiTuple.Read(b));
    }

    [Fact]
    public void BadGeometryAndShapesAreTypedErrors()
    {
        Assert.Equal(DifError.BadGeometry, Assert.Throws<DifArgumentException>(() => new SectorFormat(520)).Error);
        Assert.Equal(DifError.BadGeometry,
            Assert.Throws<DifArgumentException>(() => new ProtectionScheme(SectorFormat.Sector512, (PiType)4)).Error);
        Assert.Equal(DifError.BadGeometry,
            Assert.Throws<DifArgumentException>(() => new ProtectionScheme(default, PiType.Type1)).Error);
        var scheme = new ProtectionScheme(SectorFormat.Sector512, PiType.Type1);
        Assert.Equal(DifError.NotWholeSectors,
            Assert.Throws<DifArgumentException>(() => scheme.Generate(new byte[700], new byte[8], 0)).Error);
        Assert.Equal(DifError.EmptyBuffer,
            Assert.Throws<DifArgumentException>(() => scheme.Generate([], [], 0)).Error);
        Assert.Equal(DifError.PiCountMismatch,
            Assert.Throws<DifArgumentException>(() => scheme.Verify(new byte[1024], new byte[8], 0)).Error);
        Assert.Equal(DifError.OutOfRange,
            Assert.Throws<DifArgumentException>(() => scheme.Verify(new byte[512], new byte[8], -1)).Error);
        Assert.Equal(DifError.PiCountMismatch,
            Assert.Throws<DifArgumentException>(() => scheme.WriteTuples(new ulong[2], new byte[8], 0)).Error);
    }

    [Fact]
    public void WriteTuplesFromCachedGuardsEqualsGenerate()
    {
        var (data, pi, scheme) = Generate(512, PiType.Type1, 8, 64);
        ushort[] guards = new ushort[8];
        Crc16T10Dif.ComputeSectors(data, 512, guards);
        byte[] pi2 = new byte[64];
        scheme.WriteTuples(guards.Select(g => (ulong)g).ToArray(), pi2, 64);
        Assert.Equal(pi, pi2);
    }
}
