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
/// The folding constants of one CRC polynomial P, each 128-bit lane as [x^D mod P, x^(D+64) mod P] for a fold over
/// D bits, derived from the polynomial's x^n mod P.
/// </summary>
internal sealed class FoldConstants(Func<int, ulong> xPowModP)
{
    public Vector128<ulong> K128 { get; } = Lane(xPowModP, 128);
    public Vector128<ulong> K256 { get; } = Lane(xPowModP, 256);
    public Vector128<ulong> K384 { get; } = Lane(xPowModP, 384);
    public Vector128<ulong> K512 { get; } = Lane(xPowModP, 512);

    /// <summary>Four 512-bit accumulators, 256 bytes apart.</summary>
    public Vector512<ulong> Z2048 { get; } = Lanes(xPowModP, 2048, 2048, 2048, 2048);

    // Per-lane distances to the end of a 256-byte block set: accumulator i, lane j folds by 128 * (15 - 4i - j) bits.
    public Vector512<ulong> T0 { get; } = Lanes(xPowModP, 1920, 1792, 1664, 1536);
    public Vector512<ulong> T1 { get; } = Lanes(xPowModP, 1408, 1280, 1152, 1024);
    public Vector512<ulong> T2 { get; } = Lanes(xPowModP, 896, 768, 640, 512);
    public Vector512<ulong> T3 { get; } = Lanes(xPowModP, 384, 256, 128, 0);

    public static Vector128<ulong> Lane(Func<int, ulong> xPowModP, int distance) =>
        Vector128.Create(xPowModP(distance), xPowModP(distance + 64));

    private static Vector512<ulong> Lanes(Func<int, ulong> xPowModP, int a, int b, int c, int d) =>
        Vector512.Create(Vector256.Create(Lane(xPowModP, a), Lane(xPowModP, b)), Vector256.Create(Lane(xPowModP, c), Lane(xPowModP, d)));
}

/// <summary>
/// One CRC as the folding kernels see it: its constants, and how a block of its message is read (and copied) into
/// the unreflected domain, most significant bit first.
/// </summary>
internal interface IFoldScheme
{
    static abstract FoldConstants Constants { get; }

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
        for (; length - pos >= 256; pos += 256)
        {
            x0 = FoldXor(x0, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos));
            x1 = FoldXor(x1, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 64));
            x2 = FoldXor(x2, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 128));
            x3 = FoldXor(x3, k2048, TScheme.Load512<TCopy>(ref src, ref dst, pos + 192));
        }
        Vector512<ulong> y = Fold(x0, k.T0) ^ Fold(x1, k.T1) ^ Fold(x2, k.T2) ^ Fold(x3, k.T3);
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
