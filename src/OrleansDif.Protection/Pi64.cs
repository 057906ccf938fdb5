using System.Buffers.Binary;

namespace OrleansDif.Protection;

/// <summary>
/// The 16-byte protection tuple of the NVMe 64b Guard format, big-endian: an 8-byte guard (CRC-64/NVME of the data),
/// a 2-byte application tag and a 6-byte reference tag (Type 1: the low 48 bits of the LBA).
/// </summary>
public readonly record struct Pi64Tuple(ulong Guard, ushort AppTag, ulong RefTag)
{
    public const int Size = 16;
    public const ulong RefMask = 0xFFFF_FFFF_FFFF;

    public static Pi64Tuple Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64BigEndian(source),
        BinaryPrimitives.ReadUInt16BigEndian(source[8..]),
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(source[10..]) << 32) | BinaryPrimitives.ReadUInt32BigEndian(source[12..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Guard);
        BinaryPrimitives.WriteUInt16BigEndian(destination[8..], AppTag);
        BinaryPrimitives.WriteUInt16BigEndian(destination[10..], (ushort)(RefTag >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], (uint)RefTag);
    }
}

/// <summary>
/// Checks of the NVMe 64b Guard format, one sector at a time: escapes (application tag 0xFFFF disables every check
/// for Types 1 and 2; Type 3 needs the application tag 0xFFFF and the reference tag all ones too), then the guard,
/// the application tag (masked, when one is expected) and the reference tag (Types 1 and 2: the low 48 bits of the
/// LBA; Type 3: not checked).
/// </summary>
public sealed class Pi64Scheme(SectorFormat format, PiType type)
{
    public SectorFormat Format { get; } = format;
    public PiType Type { get; } = type;

    /// <summary>Data bytes and tuple of one sector on a medium of this format.</summary>
    public int BlockSize => Format.DataSize + Pi64Tuple.Size;

    public ushort? AppTag { get; init; }
    public ushort AppMask { get; init; } = 0xFFFF;

    public bool IsEscaped(Pi64Tuple t) => Type == PiType.Type3
        ? t.AppTag == 0xFFFF && t.RefTag == Pi64Tuple.RefMask
        : t.AppTag == 0xFFFF;

    public PiError? VerifySector(ReadOnlySpan<byte> data, Pi64Tuple tuple, long lba)
    {
        if (IsEscaped(tuple))
        {
            return null;
        }
        ulong guard = Crc64Nvme.Compute(data);
        if (guard != tuple.Guard)
        {
            return new PiError(lba, PiCheck.Guard, guard, tuple.Guard);
        }
        if (AppTag is ushort app && (tuple.AppTag & AppMask) != (app & AppMask))
        {
            return new PiError(lba, PiCheck.AppTag, app, tuple.AppTag);
        }
        ulong expected = (ulong)lba & Pi64Tuple.RefMask;
        if (Type != PiType.Type3 && tuple.RefTag != expected)
        {
            return new PiError(lba, PiCheck.RefTag, expected, tuple.RefTag);
        }
        return null;
    }

    /// <summary>Verifies whole blocks (data + 16-byte tuple each) from <paramref name="startLba"/>; failures go to <paramref name="errors"/>.</summary>
    public int VerifyInterleaved(ReadOnlySpan<byte> blocks, long startLba, ICollection<PiError>? errors)
    {
        int block = BlockSize;
        if (blocks.IsEmpty || blocks.Length % block != 0)
        {
            throw new DifArgumentException(DifError.NotWholeSectors, $"{blocks.Length} bytes is not a whole number of {block}-byte blocks");
        }
        int failures = 0;
        for (int i = 0, off = 0; off < blocks.Length; i++, off += block)
        {
            Pi64Tuple tuple = Pi64Tuple.Read(blocks.Slice(off + Format.DataSize, Pi64Tuple.Size));
            if (VerifySector(blocks.Slice(off, Format.DataSize), tuple, startLba + i) is PiError error)
            {
                failures++;
                errors?.Add(error);
            }
        }
        return failures;
    }
}
