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
        int size = Format.DataSize;
        for (int i = 0; i < count; i++)
        {
            WriteTuple(pi, i, ComputeGuard(data.Slice(i * size, size)), AppTag, startLba, commandRefTag);
        }
    }

    /// <summary>The guard of one sector's data: CRC-16/T10-DIF, or CRC-64/NVME with the 64-bit guard.</summary>
    public ulong ComputeGuard(ReadOnlySpan<byte> sector) =>
        Format.Guard64 ? Crc64Nvme.Compute(sector) : Crc16T10Dif.Compute(sector);

    /// <summary>The guard of tuple <paramref name="index"/> of <paramref name="pi"/>.</summary>
    public ulong GuardAt(ReadOnlySpan<byte> pi, int index) => Format.Guard64
        ? Pi64Tuple.Read(pi.Slice(index * Pi64Tuple.Size, Pi64Tuple.Size)).Guard
        : PiTuple.Read(pi.Slice(index * PiTuple.Size, PiTuple.Size)).Guard;

    /// <summary>The application tag of tuple <paramref name="index"/> of <paramref name="pi"/>.</summary>
    public ushort AppTagAt(ReadOnlySpan<byte> pi, int index) => Format.Guard64
        ? Pi64Tuple.Read(pi.Slice(index * Pi64Tuple.Size, Pi64Tuple.Size)).AppTag
        : PiTuple.Read(pi.Slice(index * PiTuple.Size, PiTuple.Size)).AppTag;

    /// <summary>Whether tuple <paramref name="index"/> of <paramref name="pi"/> escapes every check.</summary>
    public bool IsEscapedAt(ReadOnlySpan<byte> pi, int index)
    {
        if (!Format.Guard64)
        {
            return IsEscaped(PiTuple.Read(pi.Slice(index * PiTuple.Size, PiTuple.Size)));
        }
        Pi64Tuple t = Pi64Tuple.Read(pi.Slice(index * Pi64Tuple.Size, Pi64Tuple.Size));
        return t.AppTag == 0xFFFF && (Type != PiType.Type3 || t.RefTag == Pi64Tuple.RefMask);
    }

    /// <summary>Checks sector <paramref name="index"/> of a run from <paramref name="startLba"/> against its tuple in <paramref name="pi"/>.</summary>
    public PiError? VerifyAt(ReadOnlySpan<byte> sector, ReadOnlySpan<byte> pi, int index, long startLba, uint? commandRefTag = null) =>
        VerifyTuple(sector, pi.Slice(index * Format.TupleSize, Format.TupleSize), startLba, commandRefTag, index);

    // Sector index of a run from startLba against its own tuple: the reference tag the run gives it, in either format.
    private PiError? VerifyTuple(ReadOnlySpan<byte> sector, ReadOnlySpan<byte> tupleBytes, long startLba, uint? commandRefTag, int index)
    {
        long lba = startLba + index;
        if (!Format.Guard64)
        {
            return VerifySector(sector, PiTuple.Read(tupleBytes), lba, unchecked(InitialRefTag(startLba, commandRefTag) + (uint)index));
        }
        if (IsEscapedAt(tupleBytes, 0))
        {
            return null;
        }
        Pi64Tuple tuple = Pi64Tuple.Read(tupleBytes);
        return CheckFields(sector, lba, tuple.Guard, tuple.AppTag, RefTag48(startLba, commandRefTag, index), tuple.RefTag);
    }

    /// <summary>The three checks of a tuple that does not escape, in order: guard, application tag, reference tag (either format).</summary>
    private PiError? CheckFields(ReadOnlySpan<byte> sector, long lba, ulong guard, ushort appTag, ulong expectedRef, ulong refTag)
    {
        if ((Checks & PiCheckFlags.Guard) != 0)
        {
            ulong computed = ComputeGuard(sector);
            if (computed != guard)
            {
                return new PiError(lba, PiCheck.Guard, computed, guard);
            }
        }
        if ((Checks & PiCheckFlags.AppTag) != 0 && (appTag & AppMask) != (AppTag & AppMask))
        {
            return new PiError(lba, PiCheck.AppTag, AppTag, appTag);
        }
        if ((Checks & PiCheckFlags.RefTag) != 0 && Type != PiType.Type3 && refTag != expectedRef)
        {
            return new PiError(lba, PiCheck.RefTag, expectedRef, refTag);
        }
        return null;
    }

    // The 64-bit guard's 48-bit reference tag: the low 48 bits of the LBA (Type 2: of the command's initial tag + index).
    private ulong RefTag48(long startLba, uint? commandRefTag, int index) =>
        (Type == PiType.Type2 && commandRefTag is uint tag ? tag + (ulong)index : (ulong)(startLba + index)) & Pi64Tuple.RefMask;

    private void WriteTuple(Span<byte> pi, int index, ulong guard, ushort appTag, long startLba, uint? commandRefTag)
    {
        if (Format.Guard64)
        {
            new Pi64Tuple(guard, appTag, RefTag48(startLba, commandRefTag, index)).Write(pi.Slice(index * Pi64Tuple.Size, Pi64Tuple.Size));
        }
        else
        {
            new PiTuple((ushort)guard, appTag, unchecked(InitialRefTag(startLba, commandRefTag) + (uint)index)).Write(pi.Slice(index * PiTuple.Size, PiTuple.Size));
        }
    }

    /// <summary>Writes one tuple per sector from guard tags computed earlier (for example at copy-in).</summary>
    public void WriteTuples(ReadOnlySpan<ulong> guards, Span<byte> pi, long startLba, uint? commandRefTag = null) =>
        WriteTuples(guards, pi, startLba, AppTag, commandRefTag);

    /// <summary>Writes one tuple per sector from guard tags computed earlier, with application tag <paramref name="appTag"/>.</summary>
    public void WriteTuples(ReadOnlySpan<ulong> guards, Span<byte> pi, long startLba, ushort appTag, uint? commandRefTag = null)
    {
        if (guards.IsEmpty || pi.Length != guards.Length * Format.TupleSize)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"{guards.Length} guard tags but a PI buffer of {pi.Length} bytes");
        }
        for (int i = 0; i < guards.Length; i++)
        {
            WriteTuple(pi, i, guards[i], appTag, startLba, commandRefTag);
        }
    }

    /// <summary>Verifies a run of sectors (data and PI in separate buffers); returns the first failure or null.</summary>
    public PiError? Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> pi, long startLba, uint? commandRefTag = null)
    {
        int count = CheckRun(data.Length, pi.Length, startLba);
        int size = Format.DataSize;
        for (int i = 0; i < count; i++)
        {
            if (VerifyAt(data.Slice(i * size, size), pi, i, startLba, commandRefTag) is PiError error)
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
        int failures = 0;
        for (int i = 0, off = 0; off < blocks.Length; i++, off += block)
        {
            if (VerifyTuple(blocks.Slice(off, Format.DataSize), blocks.Slice(off + Format.DataSize, Format.TupleSize), startLba, commandRefTag, i) is PiError error)
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
    public PiError? VerifySector(ReadOnlySpan<byte> data, PiTuple tuple, long lba, uint expectedRefTag) =>
        IsEscaped(tuple) ? null : CheckFields(data, lba, tuple.Guard, tuple.AppTag, expectedRefTag, tuple.RefTag);

    /// <summary>
    /// Whether a tuple disables all checks of its sector: application tag 0xFFFF for Types 1 and 2;
    /// application tag 0xFFFF and reference tag 0xFFFFFFFF for Type 3.
    /// </summary>
    public bool IsEscaped(PiTuple tuple) =>
        tuple.AppTag == 0xFFFF && (Type != PiType.Type3 || tuple.RefTag == 0xFFFF_FFFF);

    private int CheckRun(int dataLength, int piLength, long startLba)
    {
        int count = Format.SectorsIn(dataLength);
        if (piLength != count * Format.TupleSize)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"{count} sectors need {count * Format.TupleSize} PI bytes, got {piLength}");
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
