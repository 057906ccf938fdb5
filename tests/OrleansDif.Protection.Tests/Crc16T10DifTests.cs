using System.IO.Hashing;
using System.Text;

namespace OrleansDif.Protection.Tests;

public class Crc16T10DifTests
{
    public static TheoryData<CrcKernel> Kernels()
    {
        var data = new TheoryData<CrcKernel>();
        foreach (CrcKernel k in Enum.GetValues<CrcKernel>())
        {
            if (Crc16T10Dif.IsSupported(k))
            {
                data.Add(k);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void CheckValueIsD0DB(CrcKernel kernel)
    {
        byte[] check = Encoding.ASCII.GetBytes("123456789");
        Assert.Equal(0xD0DB, Crc16Reference.Compute(check));
        Assert.Equal(0xD0DB, Crc16T10Dif.Compute(check, kernel));
    }

    [Fact]
    public void TheMachineRunsAVectorKernel()
    {
        // The product's claim is a folding kernel; on x86 with PCLMULQDQ it must be the one picked.
        if (System.Runtime.Intrinsics.X86.Pclmulqdq.IsSupported)
        {
            Assert.NotEqual(CrcKernel.Scalar, Crc16T10Dif.BestKernel);
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void AgreesWithReferenceForEveryLengthUpTo64KiB(CrcKernel kernel)
    {
        var rng = new Random(0x7A11);
        byte[] buffer = new byte[65536 + 64];
        rng.NextBytes(buffer);
        ushort[] prefix = new ushort[65537];
        // The reference CRC of every prefix, computed incrementally in one pass.
        ushort crc = 0;
        for (int len = 0; len <= 65536; len++)
        {
            prefix[len] = crc;
            if (len < 65536)
            {
                crc = Crc16Reference.Compute(buffer.AsSpan(len, 1), crc);
            }
        }
        for (int len = 0; len <= 65536; len++)
        {
            ushort got = Crc16T10Dif.Compute(buffer.AsSpan(0, len), kernel);
            if (got != prefix[len])
            {
                Assert.Fail($"length {len}: expected 0x{prefix[len]:X4}, got 0x{got:X4}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void AgreesWithReferenceAtEveryAlignment(CrcKernel kernel)
    {
        var rng = new Random(42);
        byte[] buffer = new byte[9000];
        rng.NextBytes(buffer);
        for (int align = 0; align < 64; align++)
        {
            foreach (int len in new[] { 1, 15, 16, 17, 63, 64, 127, 128, 129, 255, 256, 512, 520, 1000, 4096, 8000 })
            {
                ReadOnlySpan<byte> slice = buffer.AsSpan(align, len);
                Assert.Equal(Crc16Reference.Compute(slice), Crc16T10Dif.Compute(slice, kernel));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void UpdateContinuesAcrossSplits(CrcKernel kernel)
    {
        var rng = new Random(7);
        byte[] buffer = new byte[5000];
        rng.NextBytes(buffer);
        ushort whole = Crc16Reference.Compute(buffer);
        for (int trial = 0; trial < 200; trial++)
        {
            int split = rng.Next(buffer.Length + 1);
            ushort first = Crc16T10Dif.Compute(buffer.AsSpan(0, split), kernel);
            Assert.Equal(whole, Crc16T10Dif.Update(first, buffer.AsSpan(split), kernel));
        }
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void CopyAndComputeCopiesAndAgrees(CrcKernel kernel)
    {
        var rng = new Random(11);
        for (int trial = 0; trial < 300; trial++)
        {
            int len = trial < 200 ? trial : rng.Next(1, 20000);
            byte[] src = new byte[len];
            rng.NextBytes(src);
            byte[] dst = new byte[len + 8];
            Array.Fill(dst, (byte)0xA5);
            ushort crc = Crc16T10Dif.CopyAndCompute(src, dst, kernel);
            Assert.Equal(Crc16Reference.Compute(src), crc);
            Assert.True(dst.AsSpan(0, len).SequenceEqual(src));
            Assert.All(dst[len..], b => Assert.Equal(0xA5, b));
        }
    }

    [Fact]
    public void CopyAndComputeRefusesShortOrOverlappingDestination()
    {
        byte[] src = new byte[100];
        var e = Assert.Throws<DifArgumentException>(() => Crc16T10Dif.CopyAndCompute(src, new byte[99]));
        Assert.Equal(DifError.BufferTooSmall, e.Error);
        e = Assert.Throws<DifArgumentException>(() => Crc16T10Dif.CopyAndCompute(src.AsSpan(0, 50), src.AsSpan(10, 60)));
        Assert.Equal(DifError.OverlappingBuffers, e.Error);
    }

    [Fact]
    public void MatchesSystemIoHashingParameterSet()
    {
        // CRC-32 with poly 0x8BB70000, not reflected, carries the CRC-16 in its top 16 bits.
        var crc32 = new Crc32(Crc32ParameterSet.Create(0x8BB70000, 0, 0, false));
        var rng = new Random(3);
        byte[] data = new byte[4096];
        rng.NextBytes(data);
        crc32.Append(data);
        Assert.Equal((ushort)(crc32.GetCurrentHashAsUInt32() >> 16), Crc16T10Dif.Compute(data));
    }

    [Fact]
    public void ComputeSectorsValidatesShape()
    {
        byte[] data = new byte[1024];
        new Random(5).NextBytes(data);
        ushort[] guards = new ushort[2];
        Crc16T10Dif.ComputeSectors(data, 512, guards);
        Assert.Equal(Crc16Reference.Compute(data.AsSpan(512, 512)), guards[1]);
        Assert.Equal(DifError.NotWholeSectors,
            Assert.Throws<DifArgumentException>(() => Crc16T10Dif.ComputeSectors(new byte[1000], 512, new ushort[2])).Error);
        Assert.Equal(DifError.PiCountMismatch,
            Assert.Throws<DifArgumentException>(() => Crc16T10Dif.ComputeSectors(data, 512, new ushort[3])).Error);
    }
}
