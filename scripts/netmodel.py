"""netmodel.py: the time of dptrain's gradient reduction, message by message, for
scripts/project.py (many nodes) and scripts/shaped_network.py (two shaped nodes).

What is reduced: dptrain sums the gradient exactly as int64 fixed point (8 bytes per
parameter) with one MPI_Iallreduce per bucket, in place (src/dist/gradsync.c, comm.c).
Open MPI 4.1 runs a non-blocking allreduce in libnbc, which for an in-place reduction
(and for fewer than 4 ranks or under 64 KiB) picks a binomial tree: ceil(log2 P) rounds
of reduction towards rank 0, each moving the whole bucket, then ceil(log2 P) rounds of
broadcast (ompi/mca/coll/libnbc/nbc_iallreduce.c: allred_sched_diss). That is
"binomial", dptrain's default. OMPI_MCA_coll_libnbc_iallreduce_algorithm=3 selects
"rabenseifner" (reduce-scatter by recursive halving, allgather by recursive doubling:
2 log2 P messages, 2 (P-1)/P of the bytes; the ranks beyond a power of 2 hand their whole
vector to a partner first and get the sum back last), =1 "ring" (2 (P-1) messages of n/P).

How long a round takes: every message of a round starts together; a message between two
ranks of one node costs alpha_local + bytes x beta_local (shared memory); the messages
between nodes share their nodes' network links: a node's outgoing bytes and its incoming
bytes each queue on its link (full duplex), which costs alpha + bytes x beta. The round
lasts as long as its slowest message or link, plus the reduction of what was received
(bytes x gamma, int64 additions) where it reduces. Rounds follow each other; buckets
too (their bytes share the same links: the sum of their times). With one rank per node
this gives the textbook costs: binomial 2 ceil(log2 P) (alpha + n beta) + ceil(log2 P)
n gamma; rabenseifner 2 log2 P alpha + 2 (P-1)/P n beta + (P-1)/P n gamma.

Standard library only."""
import math

ALGORITHMS = ("binomial", "rabenseifner", "ring")

# Parameters per layer in the order backward finishes them (the last layer first), and
# the bucket rule of gradsync.c's plan_buckets: adjacent layers are packed until a bucket
# holds at least bucket_kb KiB worth of floats (the default --bucket-kb is 256).
LAYERS = {
    "reference": [("fc2", 1290), ("fc1", 204928), ("conv2", 18496), ("conv1", 320)],
    "nopool": [("fc2", 1290), ("fc1", 4718720), ("conv2", 18496), ("conv1", 320)],
}
BYTES_PER_PARAM = 8  # int64 fixed point


def params(model):
    return sum(n for _, n in LAYERS[model])


def buckets(model, bucket_kb=256):
    """The bytes each bucket reduces, in the order they start."""
    want = bucket_kb * 1024 // 4
    out, cur = [], 0
    for _, n in LAYERS[model]:
        cur += n
        if cur >= want:
            out.append(cur * BYTES_PER_PARAM)
            cur = 0
    if cur:
        out.append(cur * BYTES_PER_PARAM)
    return out


def rounds(algorithm, P):
    """The rounds of one allreduce on P ranks: a list of (messages, reduces), messages as
    (source rank, destination rank, fraction of the bucket), reduces: whether the
    receivers add what they received (the fraction of the largest message)."""
    if P <= 1:
        return []
    if algorithm == "binomial":
        maxr = math.ceil(math.log2(P))
        out = []
        for r in range(1, maxr + 1):  # reduce towards rank 0
            out.append(([(v + (1 << (r - 1)), v, 1.0) for v in range(0, P, 1 << r)
                         if v + (1 << (r - 1)) < P], True))
        for r in range(maxr):  # broadcast from rank 0
            out.append(([(v - (1 << r), v, 1.0) for v in range(1 << r, min(P, 1 << (r + 1)))], False))
        return out
    if algorithm == "rabenseifner":
        pof2 = 1 << (P.bit_length() - 1)
        if pof2 != P:  # the ranks beyond a power of 2 hand their vector in first, get it back last
            extra = P - pof2
            inner = rounds(algorithm, pof2)
            return ([([(pof2 + i, i, 1.0) for i in range(extra)], True)] + inner +
                    [([(i, pof2 + i, 1.0) for i in range(extra)], False)])
        out, frac, d = [], 1.0, P // 2
        while d >= 1:  # reduce-scatter: exchange half of what is left with rank xor d
            frac /= 2
            out.append(([(v, v ^ d, frac) for v in range(P)], True))
            d //= 2
        d = 1
        while d < P:  # allgather: the same exchanges backwards, the pieces growing
            out.append(([(v, v ^ d, frac) for v in range(P)], False))
            frac *= 2
            d *= 2
        return out
    if algorithm == "ring":
        step = [(v, (v + 1) % P, 1.0 / P) for v in range(P)]
        return [(step, k < P - 1) for k in range(2 * (P - 1))]
    raise ValueError(f"unknown algorithm {algorithm!r}; one of {', '.join(ALGORITHMS)}")


def round_time(messages, reduces, nbytes, node_of, net, local):
    """Seconds of one round. net, local: dicts with alpha (s), beta (s/byte); gamma (s/byte)
    is taken from local (the additions run on the nodes' cores)."""
    worst = 0.0
    out_bytes, in_bytes = {}, {}
    for s, d, f in messages:
        b = f * nbytes
        if node_of(s) == node_of(d):
            worst = max(worst, local["alpha"] + b * local["beta"])
        else:
            out_bytes[node_of(s)] = out_bytes.get(node_of(s), 0.0) + b
            in_bytes[node_of(d)] = in_bytes.get(node_of(d), 0.0) + b
    for b in list(out_bytes.values()) + list(in_bytes.values()):
        worst = max(worst, net["alpha"] + b * net["beta"])
    if reduces and messages:
        worst += max(f for _, _, f in messages) * nbytes * local.get("gamma", 0.0)
    return worst


def allreduce_time(algorithm, P, nbytes, net, local=None, ranks_per_node=1):
    """Seconds for one allreduce of nbytes on P ranks placed ranks_per_node to a node,
    consecutive ranks together (mpirun's default, by slot)."""
    local = local or net
    node_of = lambda r: r // ranks_per_node
    return sum(round_time(m, red, nbytes, node_of, net, local) for m, red in rounds(algorithm, P))


def gradient_time(model, algorithm, P, net, local=None, ranks_per_node=1, bucket_kb=256):
    """(seconds for all buckets, seconds of the last bucket): the whole reduction of a step,
    and the part that cannot overlap backward (the last bucket is final when backward is)."""
    ts = [allreduce_time(algorithm, P, b, net, local, ranks_per_node) for b in buckets(model, bucket_kb)]
    return sum(ts), ts[-1] if ts else 0.0


def step_time(compute, backward_share, comm_all, comm_last, overlap):
    """Step seconds from the compute of a step and its reduction. Without overlap the
    reduction follows backward. With it, every bucket but the last can run during what is
    left of backward after it (taken as the whole backward pass, backward_share of the
    compute: an upper bound on what overlap hides, since Open MPI's libnbc moves a round
    on only when dptrain calls into MPI, at the end of each layer); the last cannot."""
    if not overlap:
        return compute + comm_all
    early = comm_all - comm_last
    return compute + max(0.0, early - backward_share * compute) + comm_last


def fit_alpha_beta(points, algorithm="binomial", gamma=0.0):
    """alpha, beta of a link from (P, bytes, seconds) of allreduces with one rank per end,
    least squares on relative error, gamma (s/byte of additions) known. Each point's
    time is a alpha + b beta + c gamma for its algorithm's counts (a, b, c)."""
    unit = lambda k: {"alpha": 0.0, "beta": 0.0, "gamma": 0.0, k: 1.0}
    rows = []
    for p, n, t in points:
        a, b, c = (allreduce_time(algorithm, p, n, unit(k)) for k in ("alpha", "beta", "gamma"))
        rows.append((a / t, b / t, (t - c * gamma) / t))
    s11 = sum(x * x for x, _, _ in rows)
    s12 = sum(x * y for x, y, _ in rows)
    s22 = sum(y * y for _, y, _ in rows)
    r1 = sum(x * z for x, _, z in rows)
    r2 = sum(y * z for _, y, z in rows)
    det = s11 * s22 - s12 * s12
    if abs(det) < 1e-300:
        raise ValueError("the points do not determine alpha and beta (need several sizes)")
    alpha = (r1 * s22 - r2 * s12) / det
    beta = (s11 * r2 - s12 * r1) / det
    return max(alpha, 1e-9), max(beta, 1e-14)
