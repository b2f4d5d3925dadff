"""An operating-system scheduler simulation in the style of the classic Richards benchmark
(written here): an idle task, workers, handlers and devices exchange packets through a
priority-ordered task list; object attributes, method calls and branches."""

IDLE, WORKER, HANDLER_A, HANDLER_B, DEVICE_A, DEVICE_B = range(6)
KIND_DEVICE, KIND_WORK = 0, 1


class Packet:
    __slots__ = ("link", "dest", "kind", "count", "data")

    def __init__(self, link, dest, kind):
        self.link = link
        self.dest = dest
        self.kind = kind
        self.count = 0
        self.data = [0, 0, 0, 0]

    def append_to(self, queue):
        self.link = None
        if queue is None:
            return self
        tail = queue
        while tail.link is not None:
            tail = tail.link
        tail.link = self
        return queue


class Task:
    def __init__(self, scheduler, ident, priority, queue):
        self.scheduler = scheduler
        self.ident = ident
        self.priority = priority
        self.queue = queue
        self.waiting = queue is not None
        self.held = False
        self.suspended = queue is None
        scheduler.add(self)

    def runnable(self):
        return not self.held and not self.suspended and (self.queue is not None or not self.waiting)

    def take_packet(self):
        packet = self.queue
        if packet is not None:
            self.queue = packet.link
            packet.link = None
        return packet

    def receive(self, packet):
        self.queue = packet.append_to(self.queue)
        self.suspended = False


class IdleTask(Task):
    def __init__(self, scheduler, count):
        super().__init__(scheduler, IDLE, 0, None)
        self.suspended = False
        self.seed = 1
        self.count = count

    def step(self, packet):
        self.count -= 1
        if self.count == 0:
            return self.scheduler.hold_self(self)
        if self.seed & 1 == 0:
            self.seed >>= 1
            return self.scheduler.release(DEVICE_A)
        self.seed = (self.seed >> 1) ^ 0xD008
        return self.scheduler.release(DEVICE_B)


class WorkerTask(Task):
    def __init__(self, scheduler, queue):
        super().__init__(scheduler, WORKER, 1000, queue)
        self.dest = HANDLER_A
        self.letter = 0

    def step(self, packet):
        if packet is None:
            return self.scheduler.wait_self(self)
        self.dest = HANDLER_B if self.dest == HANDLER_A else HANDLER_A
        packet.dest = self.dest
        packet.count = 0
        for i in range(4):
            self.letter = self.letter % 26 + 1
            packet.data[i] = self.letter
        return self.scheduler.send(packet, self.dest)


class HandlerTask(Task):
    def __init__(self, scheduler, ident, queue):
        super().__init__(scheduler, ident, 2000 + ident, queue)
        self.work = None
        self.devices = None

    def step(self, packet):
        if packet is not None:
            if packet.kind == KIND_WORK:
                self.work = packet.append_to(self.work)
            else:
                self.devices = packet.append_to(self.devices)
        if self.work is not None:
            work = self.work
            if work.count >= 4:
                self.work = work.link
                return self.scheduler.send(work, WORKER)
            if self.devices is not None:
                device = self.devices
                self.devices = device.link
                device.data[0] = work.data[work.count]
                work.count += 1
                return self.scheduler.send(device, device.dest)
        return self.scheduler.wait_self(self)


class DeviceTask(Task):
    def __init__(self, scheduler, ident):
        super().__init__(scheduler, ident, 4000 + ident, None)
        self.pending = None

    def step(self, packet):
        if packet is None:
            if self.pending is None:
                return self.scheduler.wait_self(self)
            packet, self.pending = self.pending, None
            return self.scheduler.send(packet, HANDLER_A if self.ident == DEVICE_A else HANDLER_B)
        self.pending = packet
        self.scheduler.hold_count += 1
        return self.scheduler.hold_self(self)


class Scheduler:
    def __init__(self):
        self.tasks = {}
        self.queue_count = 0
        self.hold_count = 0

    def add(self, task):
        self.tasks[task.ident] = task

    def ordered(self):
        return sorted(self.tasks.values(), key=lambda t: -t.priority)

    def hold_self(self, task):
        task.held = True
        return None

    def wait_self(self, task):
        task.waiting = True
        task.suspended = task.queue is None
        return None

    def release(self, ident):
        task = self.tasks[ident]
        task.held = False
        return task

    def send(self, packet, ident):
        self.queue_count += 1
        self.tasks[ident].receive(packet)
        return self.tasks[ident]

    def run(self):
        order = self.ordered()
        progress = True
        while progress:
            progress = False
            for task in order:
                if task.runnable():
                    progress = True
                    task.waiting = False
                    task.step(task.take_packet())
                    break
        return self.queue_count, self.hold_count


def run(scale):
    total = 0
    for _ in range(max(1, int(6 * scale))):
        s = Scheduler()
        IdleTask(s, 1000)
        work = Packet(None, WORKER, KIND_WORK).append_to(None)
        work = Packet(None, WORKER, KIND_WORK).append_to(work)
        WorkerTask(s, work)
        for ident in (HANDLER_A, HANDLER_B):
            queue = None
            for _ in range(3):
                queue = Packet(None, DEVICE_A if ident == HANDLER_A else DEVICE_B, KIND_DEVICE).append_to(queue)
            HandlerTask(s, ident, queue)
        DeviceTask(s, DEVICE_A)
        DeviceTask(s, DEVICE_B)
        total += sum(s.run())
    return total
