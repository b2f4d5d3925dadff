"""A one-way constraint solver in the style of DeltaBlue (written here): variables joined by
equality and scale constraints of different strengths; adding and removing constraints
re-plans the chain, then the plan is executed many times (dynamic dispatch, lists, dicts)."""

REQUIRED, STRONG, MEDIUM, WEAK = 0, 1, 2, 3


class Variable:
    def __init__(self, name, value=0.0):
        self.name = name
        self.value = value
        self.constraints = []
        self.determined_by = None
        self.walk_strength = WEAK
        self.stay = True


class Constraint:
    def __init__(self, strength):
        self.strength = strength
        self.satisfied = False

    def add(self, planner):
        for v in self.inputs() + [self.output]:
            v.constraints.append(self)
        planner.incremental_add(self)

    def remove(self, planner):
        for v in self.inputs() + [self.output]:
            v.constraints.remove(self)
        planner.incremental_remove(self)

    def inputs(self):
        return []


class Stay(Constraint):
    def __init__(self, variable, strength):
        super().__init__(strength)
        self.output = variable

    def execute(self):
        pass


class Edit(Stay):
    pass


class Equal(Constraint):
    def __init__(self, source, output, strength):
        super().__init__(strength)
        self.source = source
        self.output = output

    def inputs(self):
        return [self.source]

    def execute(self):
        self.output.value = self.source.value


class Scale(Constraint):
    def __init__(self, source, scale, offset, output, strength):
        super().__init__(strength)
        self.source = source
        self.scale = scale
        self.offset = offset
        self.output = output

    def inputs(self):
        return [self.source, self.scale, self.offset]

    def execute(self):
        self.output.value = self.source.value * self.scale.value + self.offset.value


class Planner:
    def __init__(self):
        self.constraints = []

    def incremental_add(self, constraint):
        self.constraints.append(constraint)
        self.replan()

    def incremental_remove(self, constraint):
        self.constraints.remove(constraint)
        self.replan()

    def replan(self):
        for c in self.constraints:
            c.satisfied = False
            c.output.determined_by = None
        # Strongest first; a constraint is satisfied if its output is still free.
        for c in sorted(self.constraints, key=lambda c: c.strength):
            if c.output.determined_by is None:
                c.output.determined_by = c
                c.output.walk_strength = c.strength
                c.satisfied = True
        self.plan = self.make_plan()

    def make_plan(self):
        plan, done = [], set()
        pending = [c for c in self.constraints if c.satisfied]
        while pending:
            rest = []
            for c in pending:
                if all(v.determined_by is None or id(v.determined_by) in done for v in c.inputs()):
                    plan.append(c)
                    done.add(id(c))
                else:
                    rest.append(c)
            if len(rest) == len(pending):
                break
            pending = rest
        return plan

    def execute(self):
        for c in self.plan:
            c.execute()


def chain_test(n, rounds):
    planner = Planner()
    variables = [Variable(f"v{i}") for i in range(n)]
    for a, b in zip(variables, variables[1:]):
        Equal(a, b, REQUIRED).add(planner)
    Stay(variables[-1], STRONG).add(planner)
    edit = Edit(variables[0], STRONG)
    edit.add(planner)
    for i in range(rounds):
        variables[0].value = float(i)
        planner.execute()
        if variables[-1].value != float(i):
            raise AssertionError("chain test failed")
    edit.remove(planner)


def projection_test(n, rounds):
    planner = Planner()
    scale, offset = Variable("scale", 10.0), Variable("offset", 1000.0)
    Stay(scale, REQUIRED).add(planner)
    Stay(offset, REQUIRED).add(planner)
    sources, outputs = [], []
    for i in range(n):
        src, dst = Variable(f"src{i}", float(i)), Variable(f"dst{i}")
        Stay(src, MEDIUM).add(planner)
        Scale(src, scale, offset, dst, REQUIRED).add(planner)
        sources.append(src)
        outputs.append(dst)
    for r in range(rounds):
        scale.value = 5.0 + r % 3
        planner.execute()
    return outputs[-1].value


def run(scale):
    total = 0.0
    for _ in range(max(1, int(3 * scale))):
        chain_test(60, 200)
        total += projection_test(60, 200)
    return total
