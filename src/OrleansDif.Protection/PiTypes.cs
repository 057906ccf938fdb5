using System.Buffers.Binary;

namespace OrleansDif.Protection;

/// <summary>T10 protection type.</summary>
public enum PiType
{
    /// <summary>Reference tag = low 32 bits of the LBA.</summary>
    Type1 = 1,
    /// <summary>Reference tag = initial tag from the command + sector index.</summary>
    Type2 = 2,
    /// <summary>Reference tag not checked.</summary>
    Type3 = 3,
}

/// <summary>Which field of a PI tuple failed its check.</summary>
public enum PiCheck
{
    Guard,
    AppTag,
    RefTag,
}

/// <summary>The checks a verification performs.</summary>
[Flags]
public enum PiCheckFlags
{
    None = 0,
    Guard = 1,
    AppTag = 2,
    RefTag = 4,
    All = Guard | AppTag | RefTag,
}

/// <summary>
/// Sector format: 512 or 4096 data bytes, each followed by a PI tuple: 8 bytes (T10 DIF, the 16-bit guard) or 16
/// (NVMe 64b Guard).
/// </summary>
public readonly record struct SectorFormat
{
    public static readonly SectorFormat Sector512 = new(512);
    public static readonly SectorFormat Sector4096 = new(4096);

    public SectorFormat(int dataSize, int tupleSize = PiTuple.Size)
    {
        if (dataSize != 512 && dataSize != 4096)
        {
            throw new DifArgumentException(DifError.BadGeometry, $"sector size {dataSize} is not 512 or 4096");
        }
        if (tupleSize != PiTuple.Size && tupleSize != Pi64Tuple.Size)
        {
            throw new DifArgumentException(DifError.BadGeometry, $"a PI tuple of {tupleSize} bytes is not 8 or 16");
        }
        DataSize = dataSize;
        TupleSize = tupleSize;
    }

    /// <summary>The format of <paramref name="dataSize"/>-byte sectors with the 64-bit guard's 16-byte tuples, or the 8-byte ones.</summary>
    public static SectorFormat Of(int dataSize, bool guard64) => new(dataSize, guard64 ? Pi64Tuple.Size : PiTuple.Size);

    /// <summary>Bytes of the PI tuple after each sector: 8, or 16 for the 64-bit guard.</summary>
    public int TupleSize { get; }

    /// <summary>Whether the tuples carry the NVMe 64-bit guard (CRC-64/NVME), or the T10 16-bit one.</summary>
    public bool Guard64 => TupleSize == Pi64Tuple.Size;

    /// <summary>Data bytes of a sector.</summary>
    public int DataSize { get; }

    /// <summary>Bytes of a sector on the medium: data + tuple.</summary>
    public int BlockSize => DataSize + TupleSize;

    /// <summary>Number of whole sectors in <paramref name="dataBytes"/>; throws when it is not whole.</summary>
    public int SectorsIn(int dataBytes)
    {
        if (dataBytes <= 0 || dataBytes % DataSize != 0)
        {
            throw new DifArgumentException(dataBytes == 0 ? DifError.EmptyBuffer : DifError.NotWholeSectors,
                $"{dataBytes} bytes is not a whole, non-zero number of {DataSize}-byte sectors");
        }
        return dataBytes / DataSize;
    }

    /// <summary>Lays <paramref name="count"/> sectors of separate data and PI out as on the medium: data, then tuple.</summary>
    public void Interleave(int count, ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, Span<byte> blocks)
    {
        for (int i = 0; i < count; i++)
        {
            data.Slice(i * DataSize, DataSize).CopyTo(blocks.Slice(i * BlockSize));
            pi.Slice(i * TupleSize, TupleSize).CopyTo(blocks.Slice(i * BlockSize + DataSize));
        }
    }

    /// <summary>The reverse of <see cref="Interleave"/>: <paramref name="count"/> blocks into separate data and PI.</summary>
    public void Split(int count, ReadOnlySpan<byte> blocks, Span<byte> data, Span<byte> pi)
    {
        for (int i = 0; i < count; i++)
        {
            blocks.Slice(i * BlockSize, DataSize).CopyTo(data.Slice(i * DataSize));
            blocks.Slice(i * BlockSize + DataSize, TupleSize).CopyTo(pi.Slice(i * TupleSize));
        }
    }

    public override string ToString() => $"{DataSize}+{TupleSize}";
}

/// <summary>The 8-byte T10 PI tuple, stored big-endian: guard, application tag, reference tag.</summary>
public readonly record struct PiTuple(ushort Guard, ushort AppTag, uint RefTag)
{
    public const int Size = 8;

    /// <summary>The tuple of a sector that was never written (all 0xFF; escapes every check).</summary>
    public static readonly PiTuple Unwritten = new(0xFFFF, 0xFFFF, 0xFFFF_FFFF);

    public static PiTuple Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt16BigEndian(source),
        BinaryPrimitives.ReadUInt16BigEndian(source[2..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[4..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, Guard);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], AppTag);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], RefTag);
    }
}

/// <summary>SCSI sense data of a protection failure.</summary>
public readonly record struct ScsiSense(byte SenseKey, byte Asc, byte Ascq)
{
    public const byte AbortedCommand = 0x0B;

    public override string ToString() => $"sense key 0x{SenseKey:X2} ASC 0x{Asc:X2} ASCQ 0x{Ascq:X2}";
}

/// <summary>NVMe completion status of a protection failure.</summary>
public readonly record struct NvmeStatus(byte StatusCodeType, byte StatusCode)
{
    public const byte MediaAndDataIntegrityErrors = 2;

    public override string ToString() => $"SCT {StatusCodeType} SC 0x{StatusCode:X2}";
}

/// <summary>A sector that failed verification: where, which check, what was expected and found.</summary>
public readonly record struct PiError(long Lba, PiCheck Check, ulong Expected, ulong Actual)
{
    public ScsiSense Scsi => PiChecks.ToScsi(Check);

    public NvmeStatus Nvme => PiChecks.ToNvme(Check);

    public override string ToString() =>
        $"LBA {Lba}: {PiChecks.Name(Check)} check failed (expected 0x{Expected:X}, actual 0x{Actual:X}; {Scsi}; NVMe {Nvme})";
}

/// <summary>Names and error codes of the three checks.</summary>
public static class PiChecks
{
    /// <summary>"guard", "app" or "ref".</summary>
    public static string Name(PiCheck check) => check switch
    {
        PiCheck.Guard => "guard",
        PiCheck.AppTag => "app",
        _ => "ref",
    };

    public static ScsiSense ToScsi(PiCheck check) => new(ScsiSense.AbortedCommand, 0x10, check switch
    {
        PiCheck.Guard => 0x01,
        PiCheck.AppTag => 0x02,
        _ => 0x03,
    });

    public static NvmeStatus ToNvme(PiCheck check) => new(NvmeStatus.MediaAndDataIntegrityErrors, check switch
    {
        PiCheck.Guard => 0x82,
        PiCheck.AppTag => 0x83,
        _ => 0x84,
    });
}
