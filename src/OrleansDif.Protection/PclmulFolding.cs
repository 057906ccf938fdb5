using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OrleansDif.Protection;

/// <summary>Whether a CRC kernel also copies what it reads (the fused copy-in).</summary>
internal interface ICopyMode
{
    static abstract bool Enabled { get; }
}

internal readonly struct NoCopy : ICopyMode
{
    public static bool Enabled => false;
}

internal readonly struct DoCopy : ICopyMode
{
    public static bool Enabled => true;
}

/// <summary>A kernel's block read: the bytes at <c>offset</c>, also stored to the destination when it copies.</summary>
internal static class CopyingRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Read128<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode
    {
        Vector128<byte> v = Vector128.LoadUnsafe(ref src, offset);
        if (TCopy.Enabled)
        {
            v.StoreUnsafe(ref dst, offset);
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Read256<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode
    {
        Vector256<byte> v = Vector256.LoadUnsafe(ref src, offset);
        if (TCopy.Enabled)
        {
            v.StoreUnsafe(ref dst, offset);
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Read512<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode
    {
        Vector512<byte> v = Vector512.LoadUnsafe(ref src, offset);
        if (TCopy.Enabled)
        {
            v.StoreUnsafe(ref dst, offset);
        }
        return v;
    }
}

/// <summary>
/// The folding constants of one CRC polynomial P: for a fold over D bits, each 128-bit lane holds the two 64-bit
/// multipliers of the accumulator's halves. Unreflected (message most significant bit first): [x^D mod P,
/// x^(D+64) mod P]. Reflected (message read as stored, least significant bit first): the halves swap places and each
/// constant is bit-reversed and taken one power lower, [rev(x^(D+63) mod P), rev(x^(D-1) mod P)], because the
/// carry-less product of two reversed 64-bit values is the reversed product one bit short of 128.
/// </summary>
internal sealed class FoldConstants
{
    private FoldConstants(Func<int, Vector128<ulong>> lane)
    {
        K128 = lane(128);
        K256 = lane(256);
        K384 = lane(384);
        K512 = lane(512);
        Z2048 = Lanes(lane, 2048, 2048, 2048, 2048);
        Z4096 = Lanes(lane, 4096, 4096, 4096, 4096);
        T0 = Lanes(lane, 1920, 1792, 1664, 1536);
        T1 = Lanes(lane, 1408, 1280, 1152, 1024);
        T2 = Lanes(lane, 896, 768, 640, 512);
        T3 = Lanes(lane, 384, 256, 128, 0);
    }

    /// <summary>The constants of a CRC whose message is folded most significant bit first.</summary>
    public static FoldConstants Unreflected(Func<int, ulong> xPowModP) => new(d => Lane(xPowModP, d));

    /// <summary>
    /// The constants of a reflected CRC, folded on the bytes as stored. A fold over 0 bits (the last lane of
    /// <see cref="T3"/>) has no reflected constant for its high half: the lane is [1, 0], and the folding keeps that
    /// half where it is itself.
    /// </summary>
    public static FoldConstants Reflected(Func<int, ulong> xPowModP) => new(d => d == 0
        ? Vector128.Create(1UL, 0UL)
        : Vector128.Create(ReverseBits(xPowModP(d + 63)), ReverseBits(xPowModP(d - 1))));

    public Vector128<ulong> K128 { get; }
    public Vector128<ulong> K256 { get; }
    public Vector128<ulong> K384 { get; }
    public Vector128<ulong> K512 { get; }

    /// <summary>Four 512-bit accumulators, 256 bytes apart.</summary>
    public Vector512<ulong> Z2048 { get; }

    /// <summary>Eight 512-bit accumulators, 512 bytes apart.</summary>
    public Vector512<ulong> Z4096 { get; }

    // Per-lane distances to the end of a 256-byte block set: accumulator i, lane j folds by 128 * (15 - 4i - j) bits.
    public Vector512<ulong> T0 { get; }
    public Vector512<ulong> T1 { get; }
    public Vector512<ulong> T2 { get; }
    public Vector512<ulong> T3 { get; }

    /// <summary>An unreflected lane, [x^D mod P, x^(D+64) mod P].</summary>
    public static Vector128<ulong> Lane(Func<int, ulong> xPowModP, int distance) =>
        Vector128.Create(xPowModP(distance), xPowModP(distance + 64));

    private static Vector512<ulong> Lanes(Func<int, Vector128<ulong>> lane, int a, int b, int c, int d) =>
        Vector512.Create(Vector256.Create(lane(a), lane(b)), Vector256.Create(lane(c), lane(d)));

    /// <summary>The 64 bits of <paramref name="v"/> in reverse order.</summary>
    public static ulong ReverseBits(ulong v)
    {
        v = ((v >> 1) & 0x5555555555555555) | ((v & 0x5555555555555555) << 1);
        v = ((v >> 2) & 0x3333333333333333) | ((v & 0x3333333333333333) << 2);
        v = ((v >> 4) & 0x0F0F0F0F0F0F0F0F) | ((v & 0x0F0F0F0F0F0F0F0F) << 4);
        return System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v);
    }
}

/// <summary>
/// One CRC as the folding kernels see it: its constants, and how a block of its message is read (and copied): into
/// the unreflected domain, most significant bit first, or as stored for a reflected CRC.
/// </summary>
internal interface IFoldScheme
{
    static abstract FoldConstants Constants { get; }

    /// <summary>The constants are <see cref="FoldConstants.Reflected"/> ones.</summary>
    static abstract bool Reflected { get; }

    /// <summary>
    /// How far ahead of the 512-bit loop to ask for the next lines (bytes; 0: not at all). A measured choice per
    /// kernel: the byte-swapping CRC-16 loop runs slower with it, the CRC-64 loop faster.
    /// </summary>
    static abstract int PrefetchAhead { get; }

    /// <summary>
    /// Whether the 512-bit loop runs eight accumulators (512 bytes a step) on messages of 1 KiB or more, or four. Also
    /// measured per kernel: eight lift the CRC-64 loop by about 2 % and slow the byte-swapping CRC-16 one a little.
    /// </summary>
    static abstract bool EightAccumulators { get; }

    static abstract Vector128<ulong> Load128<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode;

    static abstract Vector512<ulong> Load512<TCopy>(ref byte src, ref byte dst, nuint offset)
        where TCopy : struct, ICopyMode;
}

/// <summary>
/// The carry-less folding both CRC kernels run (CRC-16/T10-DIF and CRC-64/NVME): the message, read by the scheme,
/// is folded 128 bits at a time (x · (x^D mod P)) into the 128 bits the scheme's own reduction finishes.
/// </summary>
internal static class PclmulFolding
{
    /// <summary>
    /// Folds the whole 16-byte blocks of [0, <paramref name="length"/>) (at least one) with four 128-bit accumulators,
    /// <paramref name="initial"/> (the CRC's start value, placed) xored into the first: the 128 bits left, and in
    /// <paramref name="pos"/> the first byte not folded (fewer than 16 remain).
    /// </summary>
    public static Vector128<ulong> Fold128<TScheme, TCopy>(Vector128<ulong> initial, ref byte src, ref byte dst, nuint length, out nuint pos)
        where TScheme : struct, IFoldScheme
        where TCopy : struct, ICopyMode
    {
        FoldConstants k = TScheme.Constants;
        Vector128<ulong> x0 = TScheme.Load128<TCopy>(ref src, ref dst, 0) ^ initial;
        pos = 16;
        if (length >= 64)
        {
            Vector128<ulong> x1 = TScheme.Load128<TCopy>(ref src, ref dst, 16);
            Vector128<ulong> x2 = TScheme.Load128<TCopy>(ref src, ref dst, 32);
            Vector128<ulong> x3 = TScheme.Load128<TCopy>(ref src, ref dst, 48);
            pos = 64;
            Vector128<ulong> k512 = k.K512;
            for (; length - pos >= 64; pos += 64)
            {
                x0 = Fold(x0, k512) ^ TScheme.Load128<TCopy>(ref src, ref dst, pos);
                x1 = Fold(x1, k512) ^ TScheme.Load128<TCopy>(ref src, ref dst, pos + 16);
                x2 = Fold(x2, k512) ^ TScheme.Load128<TCopy>(ref src, ref dst, pos + 32);
                x3 = Fold(x3, k512) ^ TScheme.Load128<TCopy>(ref src, ref dst, pos + 48);
            }
            x0 = Fold(x0, k.K384) ^ Fold(x1, k.K256) ^ Fold(x2, k.K128) ^ x3;
        }
        return FoldBlocks<TScheme, TCopy>(x0, ref src, ref dst, ref pos, length);
    }

    /// <summary>
    /// The same with four 512-bit accumulators (AVX-512), for at least 256 bytes: every lane folds straight to the
    /// end in one step (x^0 for the last: it stays where it is), then the remaining 16-byte blocks.
    /// </summary>
    public static Vector128<ulong> Fold512<TScheme, TCopy>(Vector512<ulong> initial, ref byte src, ref byte dst, nuint length, out nuint pos)
        where TScheme : struct, IFoldScheme
        where TCopy : struct, ICopyMode
    {
        FoldConstants k = TScheme.Constants;
        Vector512<ulong> x0 = TScheme.Load512<TCopy>(ref src, ref dst, 0) ^ initial;
        Vector512<ulong> x1 = TScheme.Load512<TCopy>(ref src, ref dst, 64);
        Vector512<ulong> x2 = TScheme.Load512<TCopy>(ref src, ref dst, 128);
        Vector512<ulong> x3 = TScheme.Load512<TCopy>(ref src, ref dst, 192);
        pos = 256;
        Vector512<ulong> k2048 = k.Z2048;
        if (TScheme.EightAccumulators && length >= 1024)
        {
            // Eight accumulators, 512 bytes a step: twice the folds in flight between two loop tests.
            Vector512<ulong> x4 = TScheme.Load512<TCopy>(ref src, ref dst, 256);
            Vector512<ulong> x5 = TScheme.Load512<TCopy>(ref src, ref dst, 320);
            Vector512<ulong> x6 = TScheme.Load512<TCopy>(ref src, ref dst, 384);
            Vector512<ulong> x7 = TScheme.Load512<TCopy>(ref src, ref dst, 448);
            pos = 512;
            Vector512<ulong> k4096 = k.Z4096;
            for (; length - pos >= 512; pos += 512)
            {
                if (TScheme.PrefetchAhead != 0)
                {
                    Prefetch(ref Unsafe.Add(ref src, pos + (nuint)TScheme.PrefetchAhead));
                    Prefetch(ref Unsafe.Add(ref src, pos + 256 + (nuint)TScheme.PrefetchAhead));
                }
                x0 = FoldXor(x0, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos));
                x1 = FoldXor(x1, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 64));
                x2 = FoldXor(x2, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 128));
                x3 = FoldXor(x3, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 192));
                x4 = FoldXor(x4, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 256));
                x5 = FoldXor(x5, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 320));
                x6 = FoldXor(x6, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 384));
                x7 = FoldXor(x7, k4096, TScheme.Load512<TCopy>(ref src, ref dst, pos + 448));
            }
            x0 = FoldXor(x0, k2048, x4);
            x1 = FoldXor(x1, k2048, x5);
            x2 = FoldXor(x2, k2048, x6);
            x3 = FoldXor(x3, k2048, x7);
        }
        for (; length - pos >= 256; pos += 256)
        {
            if (TScheme.PrefetchAhead != 0)
            {
                Prefetch(ref Unsafe.Add(ref src, pos + (nuint)TScheme.PrefetchAhead)); // a hint: never faults, even past the end
            }
            x0 = FoldXor(x0, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos));
            x1 = FoldXor(x1, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 64));
            x2 = FoldXor(x2, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 128));
            x3 = FoldXor(x3, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 192));
        }
        Vector512<ulong> y = Fold(x0, k.T0) ^ Fold(x1, k.T1) ^ Fold(x2, k.T2) ^ Fold(x3, k.T3);
        if (TScheme.Reflected)
        {
            // The last lane folds by x^0: its low half passed through (times 1), its high half stays as it is.
            y ^= x3 & Vector512.Create(0UL, 0UL, 0UL, 0UL, 0UL, 0UL, 0UL, ulong.MaxValue);
        }
        Vector256<ulong> h = y.GetLower() ^ y.GetUpper();
        return FoldBlocks<TScheme, TCopy>(h.GetLower() ^ h.GetUpper(), ref src, ref dst, ref pos, length);
    }

    /// <summary>Folds the remaining whole 16-byte blocks from <paramref name="pos"/> one at a time.</summary>
    public static Vector128<ulong> FoldBlocks<TScheme, TCopy>(Vector128<ulong> x, ref byte src, ref byte dst, ref nuint pos, nuint length)
        where TScheme : struct, IFoldScheme
        where TCopy : struct, ICopyMode
    {
        Vector128<ulong> k128 = TScheme.Constants.K128;
        for (; length - pos >= 16; pos += 16)
        {
            x = Fold(x, k128) ^ TScheme.Load128<TCopy>(ref src, ref dst, pos);
        }
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch(ref byte at) => Sse.Prefetch0(Unsafe.AsPointer(ref at));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> Fold(Vector128<ulong> x, Vector128<ulong> k) =>
        Pclmulqdq.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(x, k, 0x11);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Fold(Vector512<ulong> x, Vector512<ulong> k) =>
        Pclmulqdq.V512.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.V512.CarrylessMultiply(x, k, 0x11);

    // x * k (folded) ^ data, the three-way xor in one instruction.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> FoldXor(Vector512<ulong> x, Vector512<ulong> k, Vector512<ulong> data) =>
        Avx512F.TernaryLogic(Pclmulqdq.V512.CarrylessMultiply(x, k, 0x00), Pclmulqdq.V512.CarrylessMultiply(x, k, 0x11), data, 0x96);
}
