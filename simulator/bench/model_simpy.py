"""The benchmark model in SimPy: Poisson arrivals at 9 per ms to ten
single-server FIFO queues with exponential service of mean 1 ms, dispatched
at random or to the shorter of two distinct random queues.

usage: model_simpy.py random|p2c REQUESTS SEED
prints: requests, mean sojourn (ms), wall seconds
"""

import random
import sys
import time

import simpy

SERVERS = 10
LAMBDA = 9.0  # arrivals per ms
MU = 1.0  # services per ms per server


def main():
    policy, requests, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    env = simpy.Environment()
    servers = [simpy.Resource(env, capacity=1) for _ in range(SERVERS)]
    total = [0.0, 0]

    def load(server):
        return server.count + len(server.queue)

    def pick():
        if policy == "random":
            return servers[rng.randrange(SERVERS)]
        a, b = rng.sample(range(SERVERS), 2)
        la, lb = load(servers[a]), load(servers[b])
        if la == lb:
            return servers[a if rng.random() < 0.5 else b]
        return servers[a] if la < lb else servers[b]

    def request(server):
        arrived = env.now
        with server.request() as slot:
            yield slot
            yield env.timeout(rng.expovariate(MU))
        total[0] += env.now - arrived
        total[1] += 1

    def source():
        for _ in range(requests):
            yield env.timeout(rng.expovariate(LAMBDA))
            env.process(request(pick()))

    start = time.perf_counter()
    env.process(source())
    env.run()
    wall = time.perf_counter() - start
    print(total[1], total[0] / total[1], wall)


if __name__ == "__main__":
    main()
