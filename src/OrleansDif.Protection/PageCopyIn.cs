namespace OrleansDif.Protection;

/// <summary>
/// Copy-in with guard tags computed in the same pass: the "CRC at copy-in time" of stable pages.
/// </summary>
public static class PageCopyIn
{
    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="page"/> at <paramref name="offset"/> and refreshes
    /// <paramref name="guards"/> (CRC-16/T10-DIF, or CRC-64/NVME when <paramref name="guard64"/>) for every sector the
    /// copy touched. Whole sectors are copied and checksummed in
    /// one pass; a partially touched sector is copied, then checksummed whole from the page.
    /// Returns the range of sector indexes whose guard tags were refreshed.
    /// </summary>
    public static Range CopyIn(ReadOnlySpan<byte> source, Span<byte> page, int offset, int sectorSize, Span<ulong> guards, bool guard64)
    {
        Validate(source.Length, page.Length, offset, sectorSize, guards.Length);
        int end = offset + source.Length;
        int first = offset / sectorSize;
        int last = (end - 1) / sectorSize;
        CrcKernel kernel = Crc16T10Dif.BestKernel;
        for (int s = first; s <= last; s++)
        {
            int sectorStart = s * sectorSize;
            int from = Math.Max(sectorStart, offset);
            int to = Math.Min(sectorStart + sectorSize, end);
            ReadOnlySpan<byte> part = source.Slice(from - offset, to - from);
            if (to - from == sectorSize)
            {
                guards[s] = guard64
                    ? Crc64Nvme.CopyAndCompute(part, page.Slice(sectorStart, sectorSize))
                    : Crc16T10Dif.CopyAndCompute(part, page.Slice(sectorStart, sectorSize), kernel);
            }
            else
            {
                part.CopyTo(page[from..]);
                guards[s] = guard64
                    ? Crc64Nvme.Compute(page.Slice(sectorStart, sectorSize))
                    : Crc16T10Dif.Compute(page.Slice(sectorStart, sectorSize), kernel);
            }
        }
        return first..(last + 1);
    }

    /// <summary>Throws a <see cref="DifArgumentException"/> when a copy of this shape is not valid.</summary>
    public static void Validate(int length, int pageLength, int offset, int sectorSize, int guardCount)
    {
        if (sectorSize <= 0 || pageLength <= 0 || pageLength % sectorSize != 0)
        {
            throw new DifArgumentException(DifError.BadGeometry,
                $"page of {pageLength} bytes is not a whole number of {sectorSize}-byte sectors");
        }
        if (guardCount != pageLength / sectorSize)
        {
            throw new DifArgumentException(DifError.PiCountMismatch,
                $"page has {pageLength / sectorSize} sectors but {guardCount} guard slots");
        }
        if (length == 0)
        {
            throw new DifArgumentException(DifError.EmptyBuffer, "nothing to copy: the source is empty");
        }
        if (offset < 0 || offset > pageLength || length > pageLength - offset)
        {
            throw new DifArgumentException(DifError.OutOfRange,
                $"copy of {length} bytes at offset {offset} does not fit a {pageLength}-byte page");
        }
    }
}
