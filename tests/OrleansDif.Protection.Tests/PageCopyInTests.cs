namespace OrleansDif.Protection.Tests;

public class PageCopyInTests
{
    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public void RandomCopiesLeaveEveryGuardTagRight(int sectorSize)
    {
        var rng = new Random(sectorSize);
        byte[] page = new byte[4096];
        ushort[] initial = new ushort[4096 / sectorSize];
        Crc16T10Dif.ComputeSectors(page, sectorSize, initial);
        ulong[] guards = [.. initial.Select(g => (ulong)g)];
        byte[] model = new byte[4096];
        for (int trial = 0; trial < 2000; trial++)
        {
            int offset = rng.Next(4096);
            int length = rng.Next(1, 4096 - offset + 1);
            if (trial % 5 == 0)
            {
                offset = rng.Next(4096 / sectorSize) * sectorSize; // aligned, whole sectors
                length = sectorSize * rng.Next(1, (4096 - offset) / sectorSize + 1);
            }
            byte[] src = new byte[length];
            rng.NextBytes(src);
            Range touched = PageCopyIn.CopyIn(src, page, offset, sectorSize, guards, guard64: false);
            src.CopyTo(model, offset);
            Assert.Equal(model, page);
            Assert.Equal(offset / sectorSize, touched.Start.Value);
            Assert.Equal((offset + length - 1) / sectorSize + 1, touched.End.Value);
            for (int s = 0; s < guards.Length; s++)
            {
                Assert.Equal(Crc16Reference.Compute(page.AsSpan(s * sectorSize, sectorSize)), guards[s]);
            }
        }
    }

    [Fact]
    public void BadCopiesAreRefusedAndChangeNothing()
    {
        byte[] page = new byte[4096];
        ulong[] guards = new ulong[8];
        void Expect(DifError error, Action a)
        {
            Assert.Equal(error, Assert.Throws<DifArgumentException>(a).Error);
            Assert.All(page, b => Assert.Equal(0, b));
            Assert.All(guards, g => Assert.Equal(0UL, g));
        }
        Expect(DifError.OutOfRange, () => PageCopyIn.CopyIn(new byte[10], page, -1, 512, guards, guard64: false));
        Expect(DifError.OutOfRange, () => PageCopyIn.CopyIn(new byte[10], page, 4090, 512, guards, guard64: false));
        Expect(DifError.OutOfRange, () => PageCopyIn.CopyIn(new byte[4097], page, 0, 512, guards, guard64: false));
        Expect(DifError.EmptyBuffer, () => PageCopyIn.CopyIn([], page, 0, 512, guards, guard64: false));
        Expect(DifError.PiCountMismatch, () => PageCopyIn.CopyIn(new byte[1], page, 0, 512, new ulong[7], guard64: false));
        Expect(DifError.BadGeometry, () => PageCopyIn.CopyIn(new byte[1], page, 0, 500, guards, guard64: false));
    }
}
