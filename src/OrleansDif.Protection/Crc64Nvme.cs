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
/// The vector kernel works in the unreflected domain: the bits of every byte are reversed (GFNI) and each 16-byte
/// block byte-swapped, so the message reads most significant bit first, as for the CRC-16 kernel. It folds 512-bit
/// (AVX-512) or 128-bit accumulators with carry-less multiplication by x^D mod P, reduces the last 128 bits with a
/// Barrett reduction (μ = floor(x^128 / P)), reverses the 64-bit remainder back and finishes any tail bytes with a
/// reflected table. Every constant is derived from the polynomial at start-up.
/// </remarks>
public static class Crc64Nvme
{
    /// <summary>The polynomial without its x^64 term, as an unreflected CRC uses it.</summary>
    public const ulong Polynomial = 0xAD93D23594C93659;

    /// <summary>The polynomial bit-reversed, as a reflected CRC shifts it.</summary>
    public const ulong ReflectedPolynomial = 0x9A6C9329AC4BC9B5;

    private static readonly ulong[] s_table = BuildTable();
    private static readonly FoldConstants s_fold = new(XPowModP);
    private static readonly ulong s_x128 = XPowModP(128);
    private static readonly ulong s_mu = BarrettMu();
    private static readonly Vector128<byte> s_swap128 = Vector128.Create((byte)15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    private static readonly Vector512<byte> s_swap512 = Vector512.Create(Vector256.Create(s_swap128, s_swap128), Vector256.Create(s_swap128, s_swap128));
    private static readonly Vector128<byte> s_bitReverse128 = Vector128.Create(0x8040201008040201UL).AsByte();
    private static readonly Vector512<byte> s_bitReverse512 = Vector512.Create(0x8040201008040201UL).AsByte();

    /// <summary>Whether this CPU runs the 128-bit folding kernel (PCLMULQDQ, GFNI).</summary>
    public static bool Vector128Supported => Pclmulqdq.IsSupported && Gfni.IsSupported && Ssse3.IsSupported;

    /// <summary>Whether this CPU runs the 512-bit folding kernel (VPCLMULQDQ and GFNI on AVX-512).</summary>
    public static bool Vector512Supported => Vector128Supported && Pclmulqdq.V512.IsSupported && Gfni.V512.IsSupported && Avx512BW.IsSupported;

    /// <summary>The guard of <paramref name="data"/>.</summary>
    public static ulong Compute(ReadOnlySpan<byte> data) => Compute(data, Vector512Supported ? 512 : Vector128Supported ? 128 : 0);

    /// <summary>The guard with a chosen kernel: 512, 128 or 0 (the table), for tests and the benchmark.</summary>
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
        // The initial value (all ones, its own reverse) goes in the first block's 64 most significant bits.
        nuint pos;
        Vector128<ulong> x = kernel == 512 && length >= 256
            ? PclmulFolding.Fold512<Scheme, TCopy>(Vector512.Create(0UL, ulong.MaxValue, 0UL, 0UL, 0UL, 0UL, 0UL, 0UL), ref src, ref dst, length, out pos)
            : PclmulFolding.Fold128<Scheme, TCopy>(Vector128.Create(0UL, ulong.MaxValue), ref src, ref dst, length, out pos);
        ulong reflected = ReverseBits(Reduce(x));
        return ~Table<TCopy>(reflected, ref src, ref dst, pos, length);
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

    /// <summary>What the shared folding needs of this CRC: its constants and its block read (bits reversed, byte-swapped).</summary>
    private readonly struct Scheme : IFoldScheme
    {
        public static FoldConstants Constants => s_fold;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<ulong> Load128<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode
        {
            return Ssse3.Shuffle(Gfni.GaloisFieldAffineTransform(CopyingRead.Read128<TCopy>(ref src, ref dst, offset), s_bitReverse128, 0), s_swap128).AsUInt64();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<ulong> Load512<TCopy>(ref byte src, ref byte dst, nuint offset)
            where TCopy : struct, ICopyMode
        {
            return Avx512BW.Shuffle(Gfni.V512.GaloisFieldAffineTransform(CopyingRead.Read512<TCopy>(ref src, ref dst, offset), s_bitReverse512, 0), s_swap512).AsUInt64();
        }
    }

    /// <summary>(X · x^64) mod P for the 128 bits X still to be reduced: the unreflected CRC.</summary>
    private static ulong Reduce(Vector128<ulong> x)
    {
        // X·x^64 = H·x^128 + L·x^64 ≡ H·(x^128 mod P) + L·x^64: 128 bits T.
        Vector128<ulong> t = Pclmulqdq.CarrylessMultiply(x, Vector128.CreateScalar(s_x128), 0x01) ^ Vector128.Create(0UL, x.ToScalar());
        ulong th = t.GetElement(1);
        ulong tl = t.ToScalar();
        // Barrett: q = floor(Th · μ / x^64) with μ = x^64 + μ'; remainder = Tl ^ low64(q · P').
        ulong q = th ^ Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(th), Vector128.CreateScalar(s_mu), 0x00).GetElement(1);
        return tl ^ Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(q), Vector128.CreateScalar(Polynomial), 0x00).ToScalar();
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

    private static ulong ReverseBits(ulong v)
    {
        v = ((v >> 1) & 0x5555555555555555) | ((v & 0x5555555555555555) << 1);
        v = ((v >> 2) & 0x3333333333333333) | ((v & 0x3333333333333333) << 2);
        v = ((v >> 4) & 0x0F0F0F0F0F0F0F0F) | ((v & 0x0F0F0F0F0F0F0F0F) << 4);
        return System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v);
    }
}
