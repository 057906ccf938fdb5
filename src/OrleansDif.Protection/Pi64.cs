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
