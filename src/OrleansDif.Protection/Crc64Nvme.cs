using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OrleansDif.Protection;

/// <summary>
/// CRC-64/NVME, the guard of the NVMe 64b Guard protection format: polynomial 0xAD93D23594C93659, reflected, init and
/// xorout all ones (check "123456789" = 0xAE8B14860A799888).
/// </summary>
/// <remarks>
/// The vector kernel folds in the reflected domain, on the bytes as stored (no bit reversal or byte swap per block):
/// 512-bit (AVX-512) or 128-bit accumulators, carry-less multiplied by reflected constants (bit-reversed x^(D-1) mod
/// P and x^(D+63) mod P, see <see cref="FoldConstants.Reflected"/>). The last 128 bits are turned back to the
/// unreflected domain (two 64-bit reversals) and reduced with a Barrett reduction (μ = floor(x^128 / P)); the 64-bit
/// remainder is reversed back and any tail bytes finished with a reflected table. Every constant is derived from the
/// polynomial at start-up.
/// </remarks>
public static class Crc64Nvme
{
    /// <summary>The polynomial without its x^64 term, as an unreflected CRC uses it.</summary>
    public const ulong Polynomial = 0xAD93D23594C93659;

    /// <summary>The polynomial bit-reversed, as a reflected CRC shifts it.</summary>
    public const ulong ReflectedPolynomial = 0x9A6C9329AC4BC9B5;

    private static readonly ulong[] s_table = BuildTable();
    private static readonly FoldConstants s_fold = FoldConstants.Reflected(XPowModP);
    private static readonly ulong s_x127Reflected = ReverseBits(XPowModP(127));
    private static readonly ulong s_muReflected = ReverseBits(BarrettMu());

    /// <summary>Whether this CPU runs the 128-bit folding kernel (PCLMULQDQ).</summary>
    public static bool Vector128Supported => Pclmulqdq.IsSupported;

    /// <summary>Whether this CPU runs the 512-bit folding kernel (VPCLMULQDQ on AVX-512).</summary>
    public static bool Vector512Supported => Vector128Supported && Pclmulqdq.V512.IsSupported && Avx512F.IsSupported;

    /// <summary>The guard of <paramref name="data"/>.</summary>
    public static ulong Compute(ReadOnlySpan<byte> data) => Compute(data, Vector512Supported ? 512 : Vector128Supported ? 128 : 0);

    /// <summary>The guard with a chosen kernel: 512, 128 or 0 (the table), for tests and the benchmark.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Compute(ReadOnlySpan<byte> data, int kernel)
    {
        ref byte src = ref MemoryMarshal.GetReference(data);
        return Run<NoCopy>(ref src, ref src, (nuint)data.Length, kernel);
    }

    /// <summary>
    /// Copies <paramref name="source"/> to the start of <paramref name="destination"/> and returns its guard, in one
    /// pass over the data (the fused copy-in of a 64-bit guard page).
    /// </summary>
    public static ulong CopyAndCompute(ReadOnlySpan<byte> source, Span<byte> destination) =>
        CopyAndCompute(source, destination, Vector512Supported ? 512 : Vector128Supported ? 128 : 0);

    /// <summary>The fused copy with a chosen kernel (see <see cref="Compute(ReadOnlySpan{byte}, int)"/>).</summary>
    public static ulong CopyAndCompute(ReadOnlySpan<byte> source, Span<byte> destination, int kernel)
    {
        if (destination.Length < source.Length)
        {
            throw new DifArgumentException(DifError.BufferTooSmall, $"a {destination.Length}-byte destination cannot take {source.Length} bytes");
        }
        if (source.Overlaps(destination))
        {
            throw new DifArgumentException(DifError.OverlappingBuffers, "source and destination overlap");
        }
        return Run<DoCopy>(ref MemoryMarshal.GetReference(source), ref MemoryMarshal.GetReference(destination), (nuint)source.Length, kernel);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Run<TCopy>(ref byte src, ref byte dst, nuint length, int kernel)
        where TCopy : struct, ICopyMode
    {
        if (kernel == 512 && !Vector512Supported || kernel == 128 && !Vector128Supported || kernel is not (0 or 128 or 512))
        {
            throw new PlatformNotSupportedException($"CRC-64 kernel {kernel} is not supported on this CPU");
        }
        if (kernel == 0 || length < 16)
        {
            return ~Table<TCopy>(ulong.MaxValue, ref src, ref dst, 0, length);
        }
        // The initial value (all ones, its own reverse) goes on the first block's first 64 bits (its 64 most
        // significant coefficients).
        nuint pos;
        Vector128<ulong> x = kernel == 512 && length >= 256
            ? PclmulFolding.Fold512<Scheme, TCopy>(Vector512.Create(ulong.MaxValue, 0UL, 0UL, 0UL, 0UL, 0UL, 0UL, 0UL), ref src, ref dst, length, out pos)
            : PclmulFolding.Fold128<Scheme, TCopy>(Vector128.Create(ulong.MaxValue, 0UL), ref src, ref dst, length, out pos);
        return ~Table<TCopy>(Reduce(x), ref src, ref dst, pos, length);
    }

    /// <summary>The plain bitwise definition, one bit at a time: the reference every faster path is checked against.</summary>
    public static ulong Reference(ReadOnlySpan<byte> data)
    {
        ulong crc = ulong.MaxValue;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ ReflectedPolynomial : crc >> 1;
            }
        }
        return ~crc;
    }

    // ---------------------------------------------------------------- folding

    /// <summary>What the shared folding needs of this CRC: its reflected constants and its block read (as stored).</summary>
    private readonly struct Scheme : IFoldScheme
    {
        public static FoldConstants Constants => s_fold;

        public static bool Reflected => true;

        public static int PrefetchAhead => 2048;

        public static bool EightAccumulators => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<ulong> Load128<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode =>
            CopyingRead.Read128<TCopy>(ref src, ref dst, offset).AsUInt64();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load512<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode =>
            CopyingRead.Read512<TCopy>(ref src, ref dst, offset).AsUInt64();
    }

    /// <summary>
    /// (X · x^64) mod P for the 128 bits X still to be reduced, X and the result reflected (the CRC register as a
    /// reflected CRC keeps it). The unreflected steps, each carry-less product of reversed values read one bit over:
    /// T = H·(x^128 mod P) + L·x^64, then Barrett with μ = x^64 + μ' (q = Th + ⌊Th·μ' / x^64⌋, remainder
    /// Tl + (q·P' mod x^64)).
    /// </summary>
    private static ulong Reduce(Vector128<ulong> x)
    {
        // H·x^128 ≡ H·(x^127 mod P)·x: the reversed product is one bit short, which is the factor x. L·x^64 reversed
        // is L's reversed 64 bits in the low half.
        Vector128<ulong> t = Pclmulqdq.CarrylessMultiply(x, Vector128.CreateScalar(s_x127Reflected), 0x00) ^ Vector128.CreateScalar(x.GetElement(1));
        ulong th = t.ToScalar();       // Th reversed
        ulong tl = t.GetElement(1);    // Tl reversed
        // ⌊Th·μ' / x^64⌋ reversed: the reversed product's low 64 bits, one bit up.
        ulong q = th ^ (Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(th), Vector128.CreateScalar(s_muReflected), 0x00).ToScalar() << 1);
        // q·P' mod x^64 reversed: bits 63..126 of the reversed product.
        Vector128<ulong> qp = Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(q), Vector128.CreateScalar(ReflectedPolynomial), 0x00);
        return tl ^ (qp.GetElement(1) << 1) ^ (qp.ToScalar() >> 63);
    }

    // ---------------------------------------------------------------- table (reflected), tails and other CPUs

    private static ulong Table<TCopy>(ulong crc, ref byte src, ref byte dst, nuint from, nuint length)
        where TCopy : struct, ICopyMode
    {
        ulong[] table = s_table;
        for (nuint i = from; i < length; i++)
        {
            byte b = Unsafe.Add(ref src, i);
            if (TCopy.Enabled)
            {
                Unsafe.Add(ref dst, i) = b;
            }
            crc = table[(byte)(crc ^ b)] ^ (crc >> 8);
        }
        return crc;
    }

    private static ulong[] BuildTable()
    {
        var table = new ulong[256];
        for (int i = 0; i < 256; i++)
        {
            ulong crc = (ulong)i;
            for (int b = 0; b < 8; b++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ ReflectedPolynomial : crc >> 1;
            }
            table[i] = crc;
        }
        return table;
    }

    // ---------------------------------------------------------------- constants (unreflected)

    // x^n mod P, as a 64-bit polynomial.
    private static ulong XPowModP(int n)
    {
        ulong r = 1;
        for (int i = 0; i < n; i++)
        {
            bool carry = (r >> 63) != 0;
            r <<= 1;
            if (carry)
            {
                r ^= Polynomial;
            }
        }
        return r;
    }

    // floor(x^128 / P) without its x^64 term: polynomial long division.
    private static ulong BarrettMu()
    {
        // Long division of x^128 (a one and 128 zeros) by P = x^64 + Polynomial, one dividend bit at a time.
        UInt128 p = ((UInt128)1 << 64) | Polynomial;
        UInt128 r = 0;
        ulong quotient = 0;
        // Process the dividend x^128 bit by bit (a 1 followed by 128 zeros).
        for (int bit = 128; bit >= 0; bit--)
        {
            r = (r << 1) | (bit == 128 ? UInt128.One : UInt128.Zero);
            if (((r >> 64) & 1) != 0)
            {
                r ^= p;
                if (bit < 64)
                {
                    quotient |= 1UL << bit;
                }
            }
        }
        return quotient;
    }

    private static ulong ReverseBits(ulong v) => FoldConstants.ReverseBits(v);
}
