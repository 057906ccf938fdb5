using Microsoft.Extensions.Logging;

namespace OrleansDif.Grains;

/// <summary>The mirror set's primary: passing commands to the copies, read repair, resync and scrub (see <see cref="MirrorSet"/>).</summary>
public sealed partial class DiskGrain
{
    private IDiskGrain CopyGrain(int copy) => GrainFactory.DiskCopy(_config!.Id, _number, copy);

    /// <summary>The commands this disk accepted, to every copy (with a flush after them when asked; alone when there are none).</summary>
    private Task Forward(DiskCommand[] commands, bool flush)
    {
        if (_mirror is null || (commands.Length == 0 && !flush))
        {
            return Task.CompletedTask;
        }
        var sends = new Task[_mirror.Copies - 1];
        for (int c = 1; c < _mirror.Copies; c++)
        {
            sends[c - 1] = ForwardTo(c, commands, flush);
        }
        return Task.WhenAll(sends);
    }

    private async Task ForwardTo(int c, DiskCommand[] commands, bool flush)
    {
        MirrorSet mirror = _mirror!;
        int spp = _config!.SectorsPerPage;
        try
        {
            IDiskGrain copy = CopyGrain(c);
            DiskFlushedBatch? flushed = !flush ? null
                : commands.Length == 0 ? await copy.FlushMarked().WaitAsync(CopyTimeout)
                : await copy.WritePageBatchAndFlush(commands).WaitAsync(CopyTimeout);
            DiskWriteResult[] results = flushed?.Results ?? await copy.WritePageBatch(commands).WaitAsync(CopyTimeout);
            for (int i = 0; i < commands.Length; i++)
            {
                if (results[i].Accepted)
                {
                    mirror.Wrote(c, commands[i].Lba / spp, commands[i].Pages, results[i].Boot, results[i].Landed);
                }
                else
                {
                    mirror.Failed(c, commands[i].Lba / spp, commands[i].Pages);
                }
            }
            if (flushed is not null)
            {
                mirror.Flushed(c, flushed.Boot, flushed.FlushedUpTo);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            foreach (DiskCommand command in commands)
            {
                mirror.Failed(c, command.Lba / spp, command.Pages);
            }
            CopyFailed(c, e);
        }
        if (mirror.OutOfSyncCount > 0)
        {
            StartResync();
        }
    }

    private void CopyFailed(int c, Exception e)
    {
        logger.LogWarning("Disk {Disk}: copy {Copy} did not take a command and is out of sync until resynced: {Error}",
            this.GetPrimaryKeyString(), c, e.Message);
    }

    /// <summary>
    /// A page slot as a copy read it, with the first check it fails: a tuple (the disk's own check), or else a sector
    /// whose version tag is not the version the slot holds (a lost or torn write on that copy).
    /// </summary>
    private SlotRead Checked(long lba, DiskPageRead read) => new(read.Data, read.Pi, read.HeldVersion,
        read.Failure ?? (read.Pi.Length == 0 ? null : PageMachine.VersionMismatch(_config!, lba, read.Pi, read.HeldVersion, this.GetPrimaryKeyString())?.Failure));

    /// <summary>This disk's own slot at <paramref name="lba"/>, every check applied.</summary>
    private SlotRead ReadOwnSlot(long lba) => Checked(lba, _device!.LoadPage(lba, claim: false));

    /// <summary>A copy's slot at <paramref name="lba"/>, every check applied; null when the copy does not answer.</summary>
    private async Task<SlotRead?> ReadCopySlot(int c, long lba)
    {
        try
        {
            return Checked(lba, await CopyGrain(c).LoadPage(lba, claim: false).WaitAsync(CopyTimeout));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            CopyFailed(c, e);
            return null;
        }
    }

    /// <summary>
    /// The page at <paramref name="lba"/> failed <paramref name="failure"/> here: the first copy holding version
    /// <paramref name="held"/> that passes every check serves it, and this disk's slot is rewritten from it (fenced by
    /// that version: a newer write that landed meanwhile is left alone). Null when no copy can.
    /// </summary>
    private async Task<SlotRead?> RepairFromCopies(long lba, long held, ProtectionFailure failure)
    {
        long slot = lba / _config!.SectorsPerPage;
        for (int c = 1; c < _mirror!.Copies; c++)
        {
            if (_mirror.CanStandIn(c, slot) && await ReadCopySlot(c, lba) is SlotRead copy && copy.Good && copy.Held == held)
            {
                await RepairOwn(lba, copy, failure);
                return copy;
            }
        }
        return null;
    }

    /// <summary>A sector read met a failed check: each failing page slot of the range rewritten from a good copy. False when none was.</summary>
    private async Task<bool> RepairRange(long lba, int sectors)
    {
        int spp = _config!.SectorsPerPage;
        bool any = false;
        for (long slot = lba - lba % spp; slot < lba + sectors; slot += spp)
        {
            if (ReadOwnSlot(slot) is { Good: false } own)
            {
                ReadError(own.Failure!);
                any |= await RepairFromCopies(slot, own.Held, own.Failure!) is not null;
            }
        }
        return any;
    }

    /// <summary>This disk's slot rewritten from a good copy, and flushed; false when it no longer needed it (or a newer write landed).</summary>
    private async Task<bool> RepairOwn(long lba, SlotRead good, ProtectionFailure failure)
    {
        // Only while the slot still fails: a scrub and a read may meet the same bad slot, and one repairs it.
        if (ReadOwnSlot(lba).Good || _disk!.RewriteHeld(lba, good.Data, good.Pi, good.Held) != Protection.FencedWrite.Accepted)
        {
            return false;
        }
        Repaired(lba, 0, failure.Check);
        await _disk.FlushAsync();
        return true;
    }

    private void Repaired(long lba, int copy, CheckKind check)
    {
        _repaired++;
        try
        {
            // The repair history outlives the activation (as a pool's error history does): one line per repair, next to the image.
            using var file = new FileStream(RepairLogPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            file.Write(System.Text.Encoding.ASCII.GetBytes($"{lba} {copy} {GrainHelpers.Tag(check)}\n"));
        }
        catch (IOException e)
        {
            logger.LogWarning("Disk {Disk}: the repair history could not be written: {Error}", this.GetPrimaryKeyString(), e.Message);
        }
        logger.LogInformation("Disk {Disk}: copy {Copy} of LBA {Lba} failed its {Check} check and was rewritten from a good copy",
            this.GetPrimaryKeyString(), copy, lba, GrainHelpers.Tag(check));
    }

    /// <summary>Runs the resync of the out-of-sync slots in the background (one loop at a time).</summary>
    private void StartResync()
    {
        if (_mirror is not { OutOfSyncCount: > 0 } || _resyncing)
        {
            return;
        }
        _resyncing = true;
        _ = ResyncAsync();
    }

    private async Task ResyncAsync()
    {
        try
        {
            int idle = 0;
            while (_mirror is { OutOfSyncCount: > 0 } mirror && _image is not null && idle < 8)
            {
                int before = mirror.OutOfSyncCount;
                await MendAsync(64);
                if (mirror.OutOfSyncCount < before)
                {
                    idle = 0;
                    continue;
                }
                // Nothing mended: a copy that does not answer, or slots a copy holds newer than this disk (its page
                // writes them again). Wait, a little longer each time; the next flush starts the loop again.
                await Task.Delay(TimeSpan.FromMilliseconds(100 << Math.Min(idle++, 5)));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogWarning(e, "Disk {Disk}: resync stopped", this.GetPrimaryKeyString());
        }
        finally
        {
            _resyncing = false;
        }
    }

    private enum Mended
    {
        Done,
        /// <summary>Not settled yet (a copy that did not answer or is ahead, a slot that changed meanwhile): again later.</summary>
        Deferred,
        /// <summary>This disk's slot fails a check and no copy that answered can stand in for it.</summary>
        Unrepairable,
    }

    /// <summary>
    /// Compares up to <paramref name="maxPerCopy"/> out-of-sync slots of each copy with this disk's and mends them;
    /// returns the slots this disk failed with no copy to stand in. Each copy first flushes what it cached (so that the
    /// comparison judges what the copy keeps through a crash); a copy that does not answer is left for the rest of
    /// the pass.
    /// </summary>
    private async Task<long> MendAsync(int maxPerCopy)
    {
        MirrorSet mirror = _mirror!;
        var unreachable = new HashSet<int>();
        for (int c = 1; c < mirror.Copies; c++)
        {
            try
            {
                DiskFlushedBatch flushed = await CopyGrain(c).FlushMarked().WaitAsync(CopyTimeout);
                mirror.Flushed(c, flushed.Boot, flushed.FlushedUpTo);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                CopyFailed(c, e);
                unreachable.Add(c);
            }
        }
        var slots = new SortedDictionary<long, List<(int Copy, long Sequence)>>();
        for (int c = 1; c < mirror.Copies; c++)
        {
            if (unreachable.Contains(c))
            {
                continue;
            }
            foreach (var (slot, sequence) in mirror.ToResync(c, maxPerCopy))
            {
                if (!slots.TryGetValue(slot, out var list))
                {
                    slots[slot] = list = [];
                }
                list.Add((c, sequence));
            }
        }
        long unrepairable = 0;
        foreach (var (slot, copies) in slots)
        {
            if (_image is null)
            {
                break;
            }
            while (_mending.TryGetValue(slot, out TaskCompletionSource? other))
            {
                await other.Task; // another pass is at it: compare after it, not beside it
            }
            var mine = new TaskCompletionSource();
            _mending[slot] = mine;
            try
            {
                unrepairable += await MendSlot(slot, copies, unreachable) == Mended.Unrepairable ? 1 : 0;
            }
            finally
            {
                _mending.Remove(slot);
                mine.SetResult();
            }
        }
        return unrepairable;
    }

    /// <summary>One slot against the copies recorded out of sync on it (and, when this disk's slot fails, any copy that may stand in).</summary>
    private async Task<Mended> MendSlot(long slot, List<(int Copy, long Sequence)> copies, HashSet<int> unreachable)
    {
        MirrorSet mirror = _mirror!;
        long lba = slot * _config!.SectorsPerPage;
        var reads = new Dictionary<int, SlotRead?>();
        async Task<SlotRead?> Read(int c)
        {
            if (!reads.TryGetValue(c, out SlotRead? read))
            {
                read = unreachable.Contains(c) ? null : await ReadCopySlot(c, lba);
                reads[c] = read;
                if (read is null)
                {
                    unreachable.Add(c);
                }
            }
            return read;
        }
        foreach (var (c, _) in copies)
        {
            await Read(c);
        }
        SlotRead own = ReadOwnSlot(lba); // after the copies' reads: what this disk holds now
        if (!own.Good)
        {
            SlotRead? donor = null;
            bool unanswered = false;
            for (int c = 1; c < mirror.Copies && donor is null; c++)
            {
                if (!mirror.CanStandIn(c, slot))
                {
                    continue;
                }
                SlotRead? read = await Read(c);
                unanswered |= read is null;
                if (read is SlotRead r && MirrorSet.Judge(own, r) == MirrorAction.RepairPrimary)
                {
                    donor = r;
                }
            }
            own = ReadOwnSlot(lba);
            if (donor is SlotRead good && !own.Good)
            {
                if (await RepairOwn(lba, good, own.Failure!))
                {
                    ReadError(own.Failure!);
                }
                own = ReadOwnSlot(lba);
            }
            if (!own.Good)
            {
                foreach (var (c, sequence) in copies)
                {
                    mirror.Defer(c, slot, sequence);
                }
                if (donor is not null || unanswered)
                {
                    return Mended.Deferred;
                }
                if (_unrepairableSeen.Add((slot, own.Held)))
                {
                    // Counted once per slot and version, however often a pass meets it again.
                    _unrepairable++;
                    ReadError(own.Failure!);
                    logger.LogError("Disk {Disk}: LBA {Lba} (version {Held}) fails its {Check} check on every copy that could stand in; copies: {Copies}",
                        this.GetPrimaryKeyString(), lba, own.Held, GrainHelpers.Tag(own.Failure!.Check),
                        string.Join("; ", reads.Select(r => r.Value is SlotRead x
                            ? $"copy {r.Key} version {x.Held}{(x.Failure is { } f ? $" failed {GrainHelpers.Tag(f.Check)} at LBA {f.Lba}" : " good")}{(mirror.CanStandIn(r.Key, slot) ? "" : ", stale")}"
                            : $"copy {r.Key} did not answer")));
                }
                return Mended.Unrepairable;
            }
        }
        foreach (var (c, sequence) in copies)
        {
            if (reads[c] is not SlotRead copy)
            {
                mirror.Defer(c, slot, sequence);
                continue;
            }
            switch (MirrorSet.Judge(own, copy))
            {
                case MirrorAction.InSync:
                    mirror.Resynced(c, slot, sequence, wrote: false);
                    break;
                case MirrorAction.WriteCopy when await WriteCopySlot(c, slot, own):
                    if (copy.Failure is ProtectionFailure failed)
                    {
                        Repaired(lba, c, failed.Check);
                    }
                    mirror.Resynced(c, slot, sequence, wrote: copy.Failure is null); // a repair is counted as one, not as a resync
                    break;
                default:
                    mirror.Defer(c, slot, sequence); // a copy ahead (its page writes the slot again), or a write it refused
                    break;
            }
        }
        return Mended.Done;
    }

    private async Task<bool> WriteCopySlot(int c, long slot, SlotRead own)
    {
        long lba = slot * _config!.SectorsPerPage;
        try
        {
            // Flushed at once: a repair or a resync is not done until the copy's medium has it.
            DiskFlushedBatch flushed = await CopyGrain(c).WritePageBatchAndFlush([new DiskCommand(lba, own.Data, own.Pi, [own.Held])]).WaitAsync(CopyTimeout);
            DiskWriteResult r = flushed.Results[0];
            if (r.Accepted)
            {
                _mirror!.Wrote(c, slot, 1, r.Boot, r.Landed);
                _mirror.Flushed(c, flushed.Boot, flushed.FlushedUpTo);
            }
            return r.Accepted;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            CopyFailed(c, e);
            return false;
        }
    }

    public async Task<ScrubResult> Scrub()
    {
        await EnsureOpen();
        if (_copy != 0)
        {
            throw new StorageException(StorageError.InvalidConfig, $"disk {this.GetPrimaryKeyString()} is a mirror copy: scrub its disk (copy 0), which mends every copy");
        }
        long slots = _image!.SectorCount / _config!.SectorsPerPage;
        long repairedBefore = _repaired;
        if (_mirror is null)
        {
            long bad = 0;
            for (long s = 0; s < slots; s++)
            {
                if (ReadOwnSlot(s * _config.SectorsPerPage) is { Failure: ProtectionFailure failure } read)
                {
                    bad++;
                    if (_unrepairableSeen.Add((s, read.Held)))
                    {
                        _unrepairable++;
                        ReadError(failure);
                    }
                }
            }
            return new ScrubResult(slots, 0, 0, bad, 0);
        }
        long resyncedBefore = _mirror.ResyncedSlots;
        _mirror.AllOutOfSync();
        long unrepairable = await MendAsync(int.MaxValue);
        StartResync(); // what is left (a copy that did not answer, a copy ahead) goes on in the background
        return new ScrubResult(slots, _repaired - repairedBefore, _mirror.ResyncedSlots - resyncedBefore, unrepairable, _mirror.OutOfSyncCount);
    }

    private string RepairLogPath => _image!.Path + ".repairs";

    public async Task<RepairRecord[]> GetRepairLog()
    {
        await EnsureOpen();
        if (!File.Exists(RepairLogPath))
        {
            return [];
        }
        var records = new List<RepairRecord>();
        foreach (string line in await File.ReadAllLinesAsync(RepairLogPath))
        {
            string[] f = line.Split(' ');
            if (f.Length == 3 && long.TryParse(f[0], out long lba) && int.TryParse(f[1], out int copy) && GrainHelpers.ParseTag(f[2]) is CheckKind check)
            {
                records.Add(new RepairRecord(lba, copy, check));
            }
        }
        return [.. records];
    }
}
