"""The benchmark model in Ciw: Poisson arrivals at 9 per ms to ten
single-server FIFO queues with exponential service of mean 1 ms, dispatched
at random or to the shorter of two distinct random queues.

Ciw sends arrivals to a node, not through a router, so arrivals enter an
instant dispatch node (zero service time, unlimited servers) whose routing
picks the queue.

usage: model_ciw.py random|p2c REQUESTS SEED
prints: requests, mean sojourn (ms), wall seconds
"""

import random
import sys
import time

import ciw

SERVERS = 10
LAMBDA = 9.0  # arrivals per ms
MU = 1.0  # services per ms per server


class ShorterOfTwo(ciw.routing.NodeRouting):
    """Join the shorter of two distinct random queues (ties at random)."""

    def __init__(self, rng):
        self.rng = rng

    def next_node(self, ind):
        a, b = self.rng.sample(range(2, SERVERS + 2), 2)
        la = self.simulation.nodes[a].number_of_individuals
        lb = self.simulation.nodes[b].number_of_individuals
        if la == lb:
            return self.simulation.nodes[a if self.rng.random() < 0.5 else b]
        return self.simulation.nodes[a if la < lb else b]


def main():
    policy, requests, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ciw.seed(seed)
    queues = list(range(2, SERVERS + 2))
    if policy == "random":
        dispatch = ciw.routing.Probabilistic(queues, [1 / SERVERS] * SERVERS)
    else:
        dispatch = ShorterOfTwo(random.Random(seed))
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(LAMBDA)] + [None] * SERVERS,
        service_distributions=[ciw.dists.Deterministic(0.0)]
        + [ciw.dists.Exponential(MU) for _ in range(SERVERS)],
        number_of_servers=[float("inf")] + [1] * SERVERS,
        routing=ciw.routing.NetworkRouting(
            routers=[dispatch] + [ciw.routing.Leave() for _ in range(SERVERS)]
        ),
    )

    start = time.perf_counter()
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(requests, method="Finish")
    wall = time.perf_counter() - start

    served = [r for r in sim.get_all_records() if r.node != 1]
    mean = sum(r.exit_date - r.arrival_date for r in served) / len(served)
    print(len(served), mean, wall)


if __name__ == "__main__":
    main()
