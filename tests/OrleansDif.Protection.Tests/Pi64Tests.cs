using System.Text;
using OrleansDif.Protection;

namespace OrleansDif.Protection.Tests;

/// <summary>The NVMe 64b Guard format: CRC-64/NVME, its 16-byte tuple, and scrubbing an image of it.</summary>
public sealed class Pi64Tests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-pi64-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The test's own CRC-64/NVME, from the normal (unreflected) polynomial: independent of the library's.</summary>
    private static ulong Crc64(ReadOnlySpan<byte> data)
    {
        const ulong poly = 0xAD93D23594C93659;
        ulong crc = ulong.MaxValue;
        foreach (byte b in data)
        {
            byte r = ReverseBits(b);
            crc ^= (ulong)r << 56;
            for (int i = 0; i < 8; i++)
            {
                crc = (crc & (1UL << 63)) != 0 ? (crc << 1) ^ poly : crc << 1;
            }
        }
        return ~Reverse64(crc);
    }

    private static byte ReverseBits(byte b)
    {
        int r = 0;
        for (int i = 0; i < 8; i++)
        {
            r |= ((b >> i) & 1) << (7 - i);
        }
        return (byte)r;
    }

    private static ulong Reverse64(ulong v)
    {
        ulong r = 0;
        for (int i = 0; i < 64; i++)
        {
            r |= ((v >> i) & 1) << (63 - i);
        }
        return r;
    }

    [Fact]
    public void TheCheckValueOfEveryImplementationIsTheNvmeOne()
    {
        byte[] check = Encoding.ASCII.GetBytes("123456789");
        Assert.Equal(0xAE8B14860A799888UL, Crc64(check));
        Assert.Equal(0xAE8B14860A799888UL, Crc64Nvme.Reference(check));
        Assert.Equal(0xAE8B14860A799888UL, Crc64Nvme.Compute(check));
    }

    public static TheoryData<int> Kernels()
    {
        var data = new TheoryData<int> { 0 };
        if (Crc64Nvme.Vector128Supported)
        {
            data.Add(128);
        }
        if (Crc64Nvme.Vector512Supported)
        {
            data.Add(512);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void EveryKernelAgreesWithTheBitwiseReferenceOnEveryLengthTo64KiBAndEveryMisalignment(int kernel)
    {
        var rng = new Random(64 + kernel);
        byte[] buffer = new byte[(64 << 10) + 64];
        rng.NextBytes(buffer);
        byte[] check = Encoding.ASCII.GetBytes("123456789");
        Assert.Equal(0xAE8B14860A799888UL, Crc64Nvme.Compute(check, kernel));
        // Every length 0..64 KiB (each against the library's own CRC-64/NVME, itself checked against the bitwise
        // reference below), at a misalignment that changes with the length.
        for (int length = 0; length <= 64 << 10; length += kernel == 0 && length > 4096 ? 97 : 1) // the table: every length to 4 KiB
        {
            ReadOnlySpan<byte> data = buffer.AsSpan(length % 61, length);
            ulong expected = System.IO.Hashing.Crc64.HashToUInt64(System.IO.Hashing.Crc64ParameterSet.Nvme, data);
            if (Crc64Nvme.Compute(data, kernel) != expected)
            {
                Assert.Fail($"kernel {kernel}, length {length}, offset {length % 61}: 0x{Crc64Nvme.Compute(data, kernel):X16} != 0x{expected:X16}");
            }
        }
        // The bitwise reference itself, on lengths around every fold boundary and every alignment of a block.
        foreach (int length in new[] { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 255, 256, 257, 511, 512, 513, 1000, 4096, 4111 })
        {
            for (int offset = 0; offset < 64; offset += 7)
            {
                ReadOnlySpan<byte> data = buffer.AsSpan(offset, length);
                Assert.Equal(Crc64Nvme.Reference(data), Crc64Nvme.Compute(data, kernel));
            }
        }
        Assert.Equal(Crc64(buffer.AsSpan(3, 4096)), Crc64Nvme.Compute(buffer.AsSpan(3, 4096), kernel));
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TheFusedCopyCopiesAndAgreesOnEveryLengthTo8KiB(int kernel)
    {
        var rng = new Random(7 + kernel);
        byte[] source = new byte[(8 << 10) + 64];
        rng.NextBytes(source);
        byte[] destination = new byte[source.Length + 64];
        for (int length = 0; length <= 8 << 10; length += length < 600 ? 1 : 37)
        {
            int offset = length % 13;
            Array.Clear(destination);
            ulong guard = Crc64Nvme.CopyAndCompute(source.AsSpan(offset, length), destination.AsSpan(offset + 3), kernel);
            Assert.Equal(Crc64Nvme.Reference(source.AsSpan(offset, length)), guard);
            Assert.True(source.AsSpan(offset, length).SequenceEqual(destination.AsSpan(offset + 3, length)), $"length {length}");
            Assert.Equal(0, destination[offset + 3 + length]); // nothing written past the copy
        }
        Assert.Equal(DifError.BufferTooSmall, Assert.Throws<DifArgumentException>(() => Crc64Nvme.CopyAndCompute(source.AsSpan(0, 100), destination.AsSpan(0, 99), kernel)).Error);
        Assert.Equal(DifError.OverlappingBuffers, Assert.Throws<DifArgumentException>(() => Crc64Nvme.CopyAndCompute(source.AsSpan(0, 100), source.AsSpan(50, 100), kernel)).Error);
    }

    [Fact]
    public void TheTupleIsBigEndianWithASixByteReferenceTag()
    {
        byte[] raw = new byte[16];
        new Pi64Tuple(0x0102030405060708, 0x090A, 0x0B0C0D0E0F10).Write(raw);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, raw);
        Assert.Equal(new Pi64Tuple(0x0102030405060708, 0x090A, 0x0B0C0D0E0F10), Pi64Tuple.Read(raw));
    }

    /// <summary>An image of the format built here, byte by byte, with its own CRC and encoding; faults planted at known LBAs.</summary>
    private string BuildImage(int sectorSize, int type, int sectors, Action<long, byte[]> plant)
    {
        var rng = new Random(sectorSize + type);
        int block = sectorSize + 16;
        byte[] image = new byte[sectors * block];
        for (long lba = 0; lba < sectors; lba++)
        {
            Span<byte> b = image.AsSpan((int)(lba * block), block);
            rng.NextBytes(b[..sectorSize]);
            ulong guard = Crc64(b[..sectorSize]);
            for (int i = 0; i < 8; i++)
            {
                b[sectorSize + i] = (byte)(guard >> (56 - 8 * i));
            }
            b[sectorSize + 8] = 0x12;
            b[sectorSize + 9] = 0x34;
            ulong reference = type == 3 ? 0x1234_5678_9ABC : (ulong)lba;
            for (int i = 0; i < 6; i++)
            {
                b[sectorSize + 10 + i] = (byte)(reference >> (40 - 8 * i));
            }
        }
        for (long lba = 0; lba < sectors; lba++)
        {
            byte[] one = image.AsSpan((int)(lba * block), block).ToArray();
            plant(lba, one);
            one.CopyTo(image.AsSpan((int)(lba * block)));
        }
        string path = Path.Combine(_dir, $"t{type}-{sectorSize}.img");
        File.WriteAllBytes(path, image);
        return path;
    }

    [Theory]
    [InlineData(512, 1)]
    [InlineData(4096, 1)]
    [InlineData(512, 3)]
    public void AScrubFindsExactlyThePlantedFaults(int size, int type)
    {
        string path = BuildImage(size, type, 64, (lba, b) =>
        {
            switch (lba)
            {
                case 5: b[17] ^= 0x01; break;                                  // data: guard
                case 9: b[size + 7] ^= 0x80; break;                            // the guard itself
                case 20: b[size + 15] ^= 0x04; break;                          // reference tag (checked in Type 1 only)
                case 33: b[size + 8] = 0xFF; b[size + 9] = 0xFF; b[3] ^= 1;     // app 0xFFFF: escaped in Type 1, not in Type 3
                    if (type == 3) { b.AsSpan(size + 10, 6).Fill(0xFF); }      // Type 3 needs the reference all ones too
                    break;
                case 40: b[size + 9] ^= 0x01; break;                           // application tag: checked only when asked
            }
        });
        ScrubReport report = Scrubber.Scrub(path, new SectorFormat(size), (PiType)type, crc64: true);
        Assert.Equal(64, report.Sectors);
        var expected = new List<(long, PiCheck)> { (5, PiCheck.Guard), (9, PiCheck.Guard) };
        if (type != 3)
        {
            expected.Add((20, PiCheck.RefTag));
        }
        Assert.Equal(expected, report.Errors.Select(e => (e.Lba, e.Check)).ToList());
        ScrubReport withApp = Scrubber.Scrub(path, new SectorFormat(size), (PiType)type, appTag: 0x1234, crc64: true);
        Assert.Contains(withApp.Errors, e => e.Lba == 40 && e.Check == PiCheck.AppTag);
        PiError guard = report.Errors[0];
        Assert.True(guard.Expected > uint.MaxValue || guard.Actual > uint.MaxValue, "a 64-bit guard is reported whole");
    }

    [Fact]
    public void ASidecarNamesTheFormatAndABadImageIsATypedError()
    {
        string path = BuildImage(512, 1, 8, (_, _) => { });
        new DiskImageInfo { SectorSize = 512, PiType = 1, Sectors = 8, Guard = "crc64" }.Save(path);
        Assert.True(Scrubber.Scrub(path).Clean);
        new DiskImageInfo { SectorSize = 512, PiType = 1, Sectors = 8, Guard = "crc32" }.Save(path);
        Assert.Equal(DifError.BadImage, Assert.Throws<DifArgumentException>(() => Scrubber.Scrub(path)).Error);
        File.Delete(DiskImageInfo.SidecarPath(path));
        File.WriteAllBytes(path, new byte[528 * 3 + 100]);
        Assert.Equal(DifError.TruncatedImage, Assert.Throws<DifArgumentException>(() => Scrubber.Scrub(path, crc64: true)).Error);
    }
}
