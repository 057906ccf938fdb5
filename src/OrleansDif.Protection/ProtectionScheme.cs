namespace OrleansDif.Protection;

/// <summary>
/// How sectors are protected and checked: sector format, PI type, which checks run, and the expected
/// application tag under a mask. Generates and verifies PI tuples for runs of sectors.
/// </summary>
public sealed record ProtectionScheme(SectorFormat Format, PiType Type)
{
    public SectorFormat Format { get; init; } = Format.DataSize != 0
        ? Format
        : throw new DifArgumentException(DifError.BadGeometry, "sector format is not set");

    public PiType Type { get; init; } = Enum.IsDefined(Type)
        ? Type
        : throw new DifArgumentException(DifError.BadGeometry, $"PI type {(int)Type} is not 1, 2 or 3");

    /// <summary>Checks that verification performs. Default: guard and reference tag.</summary>
    public PiCheckFlags Checks { get; init; } = PiCheckFlags.Guard | PiCheckFlags.RefTag;

    /// <summary>Application tag written by <see cref="Generate"/> and expected by verification when checked.</summary>
    public ushort AppTag { get; init; }

    /// <summary>Bits of the application tag that are compared.</summary>
    public ushort AppMask { get; init; } = 0xFFFF;

    /// <summary>Reference tag of the first sector of a command at <paramref name="startLba"/>.</summary>
    public uint InitialRefTag(long startLba, uint? commandRefTag) =>
        Type == PiType.Type2 && commandRefTag is uint tag ? tag : unchecked((uint)startLba);

    /// <summary>Computes the guard tags of <paramref name="data"/> and writes one tuple per sector into <paramref name="pi"/>.</summary>
    public void Generate(ReadOnlySpan<byte> data, Span<byte> pi, long startLba, uint? commandRefTag = null)
    {
        int count = CheckRun(data.Length, pi.Length, startLba);
        uint refTag = InitialRefTag(startLba, commandRefTag);
        int size = Format.DataSize;
        CrcKernel kernel = Crc16T10Dif.BestKernel;
        for (int i = 0; i < count; i++)
        {
            ushort guard = Crc16T10Dif.Compute(data.Slice(i * size, size), kernel);
            new PiTuple(guard, AppTag, unchecked(refTag + (uint)i)).Write(pi.Slice(i * PiTuple.Size, PiTuple.Size));
        }
    }

    /// <summary>Writes one tuple per sector from guard tags computed earlier (for example at copy-in).</summary>
    public void WriteTuples(ReadOnlySpan<ushort> guards, Span<byte> pi, long startLba, uint? commandRefTag = null) =>
        WriteTuples(guards, pi, startLba, AppTag, commandRefTag);

    /// <summary>Writes one tuple per sector from guard tags computed earlier, with application tag <paramref name="appTag"/>.</summary>
    public void WriteTuples(ReadOnlySpan<ushort> guards, Span<byte> pi, long startLba, ushort appTag, uint? commandRefTag = null)
    {
        if (guards.IsEmpty || pi.Length != guards.Length * PiTuple.Size)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"{guards.Length} guard tags but a PI buffer of {pi.Length} bytes");
        }
        uint refTag = InitialRefTag(startLba, commandRefTag);
        for (int i = 0; i < guards.Length; i++)
        {
            new PiTuple(guards[i], appTag, unchecked(refTag + (uint)i)).Write(pi.Slice(i * PiTuple.Size, PiTuple.Size));
        }
    }

    /// <summary>Verifies a run of sectors (data and PI in separate buffers); returns the first failure or null.</summary>
    public PiError? Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, long startLba, uint? commandRefTag = null)
    {
        int count = CheckRun(data.Length, pi.Length, startLba);
        uint refTag = InitialRefTag(startLba, commandRefTag);
        int size = Format.DataSize;
        for (int i = 0; i < count; i++)
        {
            PiTuple tuple = PiTuple.Read(pi.Slice(i * PiTuple.Size, PiTuple.Size));
            if (VerifySector(data.Slice(i * size, size), tuple, startLba + i, unchecked(refTag + (uint)i)) is PiError error)
            {
                return error;
            }
        }
        return null;
    }

    /// <summary>
    /// Verifies sectors stored interleaved (data then tuple, as on the medium), adding one error per failing
    /// sector to <paramref name="errors"/> when given. Returns the number of failing sectors.
    /// </summary>
    public int VerifyInterleaved(ReadOnlySpan<byte> blocks, long startLba, ICollection<PiError>? errors, uint? commandRefTag = null)
    {
        int block = Format.BlockSize;
        if (blocks.IsEmpty || blocks.Length % block != 0)
        {
            throw new DifArgumentException(DifError.NotWholeSectors,
                $"{blocks.Length} bytes is not a whole number of {block}-byte blocks");
        }
        CheckLba(startLba);
        uint refTag = InitialRefTag(startLba, commandRefTag);
        int failures = 0;
        for (int i = 0, off = 0; off < blocks.Length; i++, off += block)
        {
            PiTuple tuple = PiTuple.Read(blocks.Slice(off + Format.DataSize, PiTuple.Size));
            if (VerifySector(blocks.Slice(off, Format.DataSize), tuple, startLba + i, unchecked(refTag + (uint)i)) is PiError error)
            {
                failures++;
                errors?.Add(error);
            }
        }
        return failures;
    }

    /// <summary>
    /// Verifies one sector: escapes first, then guard, application tag (masked), reference tag.
    /// </summary>
    public PiError? VerifySector(ReadOnlySpan<byte> data, PiTuple tuple, long lba, uint expectedRefTag)
    {
        if (IsEscaped(tuple))
        {
            return null;
        }
        if ((Checks & PiCheckFlags.Guard) != 0)
        {
            ushort computed = Crc16T10Dif.Compute(data);
            if (computed != tuple.Guard)
            {
                return new PiError(lba, PiCheck.Guard, computed, tuple.Guard);
            }
        }
        if ((Checks & PiCheckFlags.AppTag) != 0 && (tuple.AppTag & AppMask) != (AppTag & AppMask))
        {
            return new PiError(lba, PiCheck.AppTag, AppTag, tuple.AppTag);
        }
        if ((Checks & PiCheckFlags.RefTag) != 0 && Type != PiType.Type3 && tuple.RefTag != expectedRefTag)
        {
            return new PiError(lba, PiCheck.RefTag, expectedRefTag, tuple.RefTag);
        }
        return null;
    }

    /// <summary>
    /// Whether a tuple disables all checks of its sector: application tag 0xFFFF for Types 1 and 2;
    /// application tag 0xFFFF and reference tag 0xFFFFFFFF for Type 3.
    /// </summary>
    public bool IsEscaped(PiTuple tuple) =>
        tuple.AppTag == 0xFFFF && (Type != PiType.Type3 || tuple.RefTag == 0xFFFF_FFFF);

    private int CheckRun(int dataLength, int piLength, long startLba)
    {
        int count = Format.SectorsIn(dataLength);
        if (piLength != count * PiTuple.Size)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"{count} sectors need {count * PiTuple.Size} PI bytes, got {piLength}");
        }
        CheckLba(startLba);
        return count;
    }

    private static void CheckLba(long lba)
    {
        if (lba < 0)
        {
            throw new DifArgumentException(DifError.OutOfRange, $"LBA {lba} is negative");
        }
    }
}
