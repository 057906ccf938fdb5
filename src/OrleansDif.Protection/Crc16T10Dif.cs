using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OrleansDif.Protection;

/// <summary>Which implementation computes a CRC.</summary>
public enum CrcKernel
{
    /// <summary>Table driven, slicing by 8. Runs everywhere.</summary>
    Scalar,
    /// <summary>PCLMULQDQ folding on 128-bit vectors, four accumulators.</summary>
    Pclmul128,
    /// <summary>VPCLMULQDQ folding on 256-bit vectors (AVX2), four accumulators of two lanes each.</summary>
    Pclmul256,
    /// <summary>VPCLMULQDQ folding on 512-bit vectors (AVX-512), four accumulators of four lanes each.</summary>
    Pclmul512,
}

/// <summary>
/// CRC-16/T10-DIF: polynomial 0x8BB7, initial value 0, not reflected, no final xor
/// (check value of ASCII "123456789" is 0xD0DB).
/// </summary>
/// <remarks>
/// The vector kernels compute the equivalent non-reflected CRC-32 with polynomial
/// 0x8BB7 &lt;&lt; 16, whose upper 16 bits are the CRC-16. Data is folded 128 bits at a time
/// (x * x^D mod P for fold distance D) with carry-less multiplication and reduced at the end
/// with a Barrett reduction. Every folding constant is derived at start-up from the polynomial.
/// </remarks>
public static class Crc16T10Dif
{
    /// <summary>The generator polynomial without its x^16 term.</summary>
    public const ushort Polynomial = 0x8BB7;

    private const ulong P32 = 0x1_8BB7_0000UL; // x^32 + (0x8BB7 << 16)

    // Slicing-by-8 tables, MSB first. Tables[k][b] = contribution of byte b followed by k zero bytes.
    private static readonly ushort[] s_tables = BuildTables();

    // Folding constants (x^D mod P), shared with the 128- and 512-bit folding; the 256-bit kernel's own, two lanes each.
    private static readonly FoldConstants s_fold = FoldConstants.Unreflected(XPowModP);
    private static readonly Vector256<ulong> s_y256 = Vector256.Create(s_fold.K256, s_fold.K256);
    private static readonly Vector256<ulong> s_y512 = Vector256.Create(s_fold.K512, s_fold.K512);
    private static readonly Vector256<ulong> s_y768 = Vector256.Create(FoldConstants.Lane(XPowModP, 768), FoldConstants.Lane(XPowModP, 768));
    private static readonly Vector256<ulong> s_y1024 = Vector256.Create(FoldConstants.Lane(XPowModP, 1024), FoldConstants.Lane(XPowModP, 1024));

    // Final reduction: [x^64 mod P, x^96 mod P] and Barrett [mu = x^64 div P, P].
    private static readonly Vector128<ulong> s_kFinal = Vector128.Create(XPowModP(64), XPowModP(96));
    private static readonly Vector128<ulong> s_kBarrett = Vector128.Create(BarrettMu(), P32);

    private static readonly Vector128<byte> s_reverse128 =
        Vector128.Create((byte)15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    private static readonly Vector256<byte> s_reverse256 = Vector256.Create(s_reverse128, s_reverse128);
    private static readonly Vector512<byte> s_reverse512 = Vector512.Create(s_reverse256, s_reverse256);

    /// <summary>The fastest kernel this CPU supports; used by the overloads without a kernel argument.</summary>
    public static CrcKernel BestKernel { get; } =
        IsSupported(CrcKernel.Pclmul512) ? CrcKernel.Pclmul512
        : IsSupported(CrcKernel.Pclmul256) ? CrcKernel.Pclmul256
        : IsSupported(CrcKernel.Pclmul128) ? CrcKernel.Pclmul128
        : CrcKernel.Scalar;

    /// <summary>Whether this CPU can run <paramref name="kernel"/>.</summary>
    public static bool IsSupported(CrcKernel kernel) => kernel switch
    {
        CrcKernel.Scalar => true,
        CrcKernel.Pclmul128 => Pclmulqdq.IsSupported && Ssse3.IsSupported,
        CrcKernel.Pclmul256 => Pclmulqdq.V256.IsSupported && Avx2.IsSupported,
        CrcKernel.Pclmul512 => Pclmulqdq.V512.IsSupported && Avx512BW.IsSupported && Avx2.IsSupported,
        _ => false,
    };

    /// <summary>CRC of <paramref name="data"/> with the fastest kernel.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Update(0, data, BestKernel);

    /// <summary>CRC of <paramref name="data"/> with the given kernel.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, CrcKernel kernel) => Update(0, data, kernel);

    /// <summary>Continues a CRC over more data: Update(Compute(a), b) == Compute(a ++ b).</summary>
    public static ushort Update(ushort crc, ReadOnlySpan<byte> data) => Update(crc, data, BestKernel);

    /// <summary>Continues a CRC over more data with the given kernel.</summary>
    public static ushort Update(ushort crc, ReadOnlySpan<byte> data, CrcKernel kernel)
    {
        ref byte src = ref MemoryMarshal.GetReference(data);
        return Run<NoCopy>(crc, ref src, ref src, (nuint)data.Length, kernel);
    }

    /// <summary>
    /// Copies <paramref name="source"/> to the start of <paramref name="destination"/> and returns the CRC of the
    /// copied bytes, computed in the same pass over the data (each block is loaded once, stored and folded).
    /// </summary>
    public static ushort CopyAndCompute(ReadOnlySpan<byte> source, Span<byte> destination) =>
        CopyAndCompute(source, destination, BestKernel);

    /// <summary>Fused copy and CRC with the given kernel.</summary>
    public static ushort CopyAndCompute(ReadOnlySpan<byte> source, Span<byte> destination, CrcKernel kernel)
    {
        if (destination.Length < source.Length)
        {
            throw new DifArgumentException(DifError.BufferTooSmall,
                $"destination holds {destination.Length} bytes, source has {source.Length}");
        }
        if (source.Overlaps(destination))
        {
            throw new DifArgumentException(DifError.OverlappingBuffers, "source and destination overlap");
        }
        return Run<DoCopy>(0, ref MemoryMarshal.GetReference(source), ref MemoryMarshal.GetReference(destination),
            (nuint)source.Length, kernel);
    }

    /// <summary>Guard tag of each <paramref name="sectorSize"/>-byte sector of <paramref name="data"/>.</summary>
    public static void ComputeSectors(ReadOnlySpan<byte> data, int sectorSize, Span<ushort> guards)
    {
        if (sectorSize <= 0 || data.Length % sectorSize != 0)
        {
            throw new DifArgumentException(DifError.NotWholeSectors,
                $"{data.Length} bytes is not a whole number of {sectorSize}-byte sectors");
        }
        int count = data.Length / sectorSize;
        if (guards.Length != count)
        {
            throw new DifArgumentException(DifError.PiCountMismatch, $"{count} sectors but {guards.Length} guard slots");
        }
        CrcKernel kernel = BestKernel;
        for (int i = 0; i < count; i++)
        {
            guards[i] = Update(0, data.Slice(i * sectorSize, sectorSize), kernel);
        }
    }

    private static ushort Run<TCopy>(ushort crc, ref byte src, ref byte dst, nuint length, CrcKernel kernel)
        where TCopy : struct, ICopyMode
    {
        if (!IsSupported(kernel))
        {
            throw new PlatformNotSupportedException($"CRC kernel {kernel} is not supported on this CPU");
        }
        uint state = (uint)crc << 16;
        state = kernel switch
        {
            CrcKernel.Pclmul512 => Fold512<TCopy>(state, ref src, ref dst, length),
            CrcKernel.Pclmul256 => Fold256<TCopy>(state, ref src, ref dst, length),
            CrcKernel.Pclmul128 => Fold128<TCopy>(state, ref src, ref dst, length),
            _ => ScalarCopy<TCopy>(state, ref src, ref dst, length),
        };
        return (ushort)(state >> 16);
    }

    // ---------------------------------------------------------------- scalar

    private static uint ScalarCopy<TCopy>(uint state, ref byte src, ref byte dst, nuint length)
        where TCopy : struct, ICopyMode
    {
        if (TCopy.Enabled && length > 0)
        {
            Unsafe.CopyBlockUnaligned(ref dst, ref src, (uint)length);
        }
        return (uint)Scalar((ushort)(state >> 16), ref src, length) << 16;
    }

    private static ushort Scalar(ushort crc, ref byte src, nuint length)
    {
        ref ushort t = ref MemoryMarshal.GetArrayDataReference(s_tables);
        nuint i = 0;
        for (; length - i >= 8; i += 8)
        {
            int b0 = Unsafe.Add(ref src, i) ^ (crc >> 8);
            int b1 = Unsafe.Add(ref src, i + 1) ^ (crc & 0xFF);
            crc = (ushort)(Unsafe.Add(ref t, 7 * 256 + b0) ^ Unsafe.Add(ref t, 6 * 256 + b1)
                ^ Unsafe.Add(ref t, 5 * 256 + Unsafe.Add(ref src, i + 2))
                ^ Unsafe.Add(ref t, 4 * 256 + Unsafe.Add(ref src, i + 3))
                ^ Unsafe.Add(ref t, 3 * 256 + Unsafe.Add(ref src, i + 4))
                ^ Unsafe.Add(ref t, 2 * 256 + Unsafe.Add(ref src, i + 5))
                ^ Unsafe.Add(ref t, 1 * 256 + Unsafe.Add(ref src, i + 6))
                ^ Unsafe.Add(ref t, Unsafe.Add(ref src, i + 7)));
        }
        for (; i < length; i++)
        {
            crc = (ushort)((crc << 8) ^ Unsafe.Add(ref t, (crc >> 8) ^ Unsafe.Add(ref src, i)));
        }
        return crc;
    }

    private static ushort[] BuildTables()
    {
        var tables = new ushort[8 * 256];
        for (int b = 0; b < 256; b++)
        {
            int crc = b << 8;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x8000) != 0 ? (crc << 1) ^ Polynomial : crc << 1;
            }
            tables[b] = (ushort)crc;
        }
        for (int k = 1; k < 8; k++)
        {
            for (int b = 0; b < 256; b++)
            {
                ushort prev = tables[(k - 1) * 256 + b];
                tables[k * 256 + b] = (ushort)((prev << 8) ^ tables[prev >> 8]);
            }
        }
        return tables;
    }

    // ---------------------------------------------------------------- 128-bit folding

    private static uint Fold128<TCopy>(uint state, ref byte src, ref byte dst, nuint length)
        where TCopy : struct, ICopyMode
    {
        if (length < 16)
        {
            return ScalarCopy<TCopy>(state, ref src, ref dst, length);
        }
        Vector128<ulong> x = PclmulFolding.Fold128<Scheme, TCopy>(Vector128.Create(0UL, (ulong)state << 32), ref src, ref dst, length, out nuint pos);
        return Finish<TCopy>(x, ref src, ref dst, pos, length);
    }

    // Reduces the folded 128 bits and finishes any partial block bytewise.
    private static uint Finish<TCopy>(Vector128<ulong> x, ref byte src, ref byte dst, nuint pos, nuint length)
        where TCopy : struct, ICopyMode
    {
        uint state = Reduce(x);
        if (pos < length)
        {
            state = ScalarCopy<TCopy>(state, ref Unsafe.Add(ref src, pos), ref Unsafe.Add(ref dst, pos), length - pos);
        }
        return state;
    }

    /// <summary>What the shared folding needs of this CRC: its constants and its block read (byte-swapped).</summary>
    private readonly struct Scheme : IFoldScheme
    {
        public static FoldConstants Constants => s_fold;

        public static bool Reflected => false;

        public static int PrefetchAhead => 0;

        public static bool EightAccumulators => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<ulong> Load128<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode
        {
            return Ssse3.Shuffle(CopyingRead.Read128<TCopy>(ref src, ref dst, offset), s_reverse128).AsUInt64();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load512<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode
        {
            return Avx512BW.Shuffle(CopyingRead.Read512<TCopy>(ref src, ref dst, offset), s_reverse512).AsUInt64();
        }
    }

    // x holds 128 bits of message not yet multiplied by x^32; returns (x * x^32) mod P.
    private static uint Reduce(Vector128<ulong> x)
    {
        Vector128<ulong> kf = s_kFinal;
        // hi * (x^96 mod P) ^ lo * x^32  -> at most 96 bits
        Vector128<ulong> lo = Sse2.ShiftLeftLogical128BitLane(Vector128.Create(x.ToScalar(), 0UL).AsByte(), 4).AsUInt64();
        Vector128<ulong> t = Pclmulqdq.CarrylessMultiply(x, kf, 0x11) ^ lo;
        // bits 64..95 * (x^64 mod P) ^ bits 0..63  -> 64 bits
        Vector128<ulong> u = Pclmulqdq.CarrylessMultiply(t, kf, 0x01) ^ Vector128.Create(t.ToScalar(), 0UL);
        // Barrett: q = ((u >> 32) * mu) >> 32; crc = u ^ q * P (low 32 bits)
        Vector128<ulong> kb = s_kBarrett;
        Vector128<ulong> q = Sse2.ShiftRightLogical(Pclmulqdq.CarrylessMultiply(Sse2.ShiftRightLogical(u, 32), kb, 0x00), 32);
        Vector128<ulong> r = u ^ Pclmulqdq.CarrylessMultiply(q, kb, 0x10);
        return (uint)r.ToScalar();
    }

    // ---------------------------------------------------------------- 256-bit folding

    private static uint Fold256<TCopy>(uint state, ref byte src, ref byte dst, nuint length)
        where TCopy : struct, ICopyMode
    {
        if (length < 128)
        {
            return Fold128<TCopy>(state, ref src, ref dst, length);
        }
        Vector256<ulong> x0 = Load256<TCopy>(ref src, ref dst, 0) ^ Vector256.Create(0UL, (ulong)state << 32, 0UL, 0UL);
        Vector256<ulong> x1 = Load256<TCopy>(ref src, ref dst, 32);
        Vector256<ulong> x2 = Load256<TCopy>(ref src, ref dst, 64);
        Vector256<ulong> x3 = Load256<TCopy>(ref src, ref dst, 96);
        nuint pos = 128;
        Vector256<ulong> k1024 = s_y1024;
        for (; length - pos >= 128; pos += 128)
        {
            x0 = Fold(x0, k1024) ^ Load256<TCopy>(ref src, ref dst, pos);
            x1 = Fold(x1, k1024) ^ Load256<TCopy>(ref src, ref dst, pos + 32);
            x2 = Fold(x2, k1024) ^ Load256<TCopy>(ref src, ref dst, pos + 64);
            x3 = Fold(x3, k1024) ^ Load256<TCopy>(ref src, ref dst, pos + 96);
        }
        x3 ^= Fold(x0, s_y768) ^ Fold(x1, s_y512) ^ Fold(x2, s_y256);
        Vector128<ulong> x = PclmulFolding.Fold(x3.GetLower(), s_fold.K128) ^ x3.GetUpper();
        x = PclmulFolding.FoldBlocks<Scheme, TCopy>(x, ref src, ref dst, ref pos, length);
        return Finish<TCopy>(x, ref src, ref dst, pos, length);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> Load256<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode
    {
        return Avx2.Shuffle(CopyingRead.Read256<TCopy>(ref src, ref dst, offset), s_reverse256).AsUInt64();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> Fold(Vector256<ulong> x, Vector256<ulong> k) =>
        Pclmulqdq.V256.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.V256.CarrylessMultiply(x, k, 0x11);

    // ---------------------------------------------------------------- 512-bit folding

    private static uint Fold512<TCopy>(uint state, ref byte src, ref byte dst, nuint length)
        where TCopy : struct, ICopyMode
    {
        if (length < 256)
        {
            return Fold256<TCopy>(state, ref src, ref dst, length);
        }
        Vector128<ulong> x = PclmulFolding.Fold512<Scheme, TCopy>(Vector512.Create(0UL, (ulong)state << 32, 0UL, 0UL, 0UL, 0UL, 0UL, 0UL),
            ref src, ref dst, length, out nuint pos);
        return Finish<TCopy>(x, ref src, ref dst, pos, length);
    }

    // ---------------------------------------------------------------- constants

    // x^n mod P, as a 32-bit polynomial.
    private static ulong XPowModP(int n)
    {
        ulong r = 1;
        for (int i = 0; i < n; i++)
        {
            r <<= 1;
            if ((r & (1UL << 32)) != 0)
            {
                r ^= P32;
            }
        }
        return r;
    }

    // floor(x^64 / P): polynomial long division, 33-bit quotient.
    private static ulong BarrettMu()
    {
        UInt128 rem = (UInt128)1 << 64;
        UInt128 p = P32;
        ulong quotient = 0;
        for (int shift = 32; shift >= 0; shift--)
        {
            if (((rem >> (32 + shift)) & 1) != 0)
            {
                rem ^= p << shift;
                quotient |= 1UL << shift;
            }
        }
        return quotient;
    }
}
