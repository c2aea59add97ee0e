"""Imagination across machines: Ray actors, each holding the world model and a copy of the
policy, imagine their share of a batch of rollouts (judged by the caller, which holds the judges).

``RayImagination(...)(policy, contexts, instructions, ...)`` is a drop-in for
``wmpo_worldmodel.imagination.imagine``: the current policy weights go to the workers through
Ray's object store each call, the batch is split into contiguous shares (groups stay whole when
the share size is a multiple of the group size), and the shares come back concatenated in order.
Without a running Ray cluster, ``ray.init`` starts a local instance; on a cluster, set RAY_ADDRESS.
"""

import math

import numpy as np
import torch

from wmpo_worldmodel.imagination import ImaginedBatch, judge_rollouts


class ImaginationWorker:
    """A Ray actor: world model + a policy whose weights are set per call."""

    def __init__(self, policy: str, world_model: str, device: str, threads: int):
        from wmpo_common.cpu_memory import reuse_freed_memory
        from wmpo_policy.vla.policy import VLAPolicy
        from wmpo_worldmodel.pipeline import WorldModelPipeline

        reuse_freed_memory()  # a worker process of its own
        torch.set_num_threads(threads)
        self.policy = VLAPolicy.from_pretrained(policy, device)
        self.world_model = WorldModelPipeline.load(world_model, device)

    def imagine(self, weights, contexts, instructions, max_steps, temperature, sampler, sampler_steps, seed, chunks):
        from wmpo_worldmodel.imagination import imagine

        self.policy.model.load_state_dict(weights)
        self.policy.model.eval()
        generator = torch.Generator().manual_seed(seed)
        return imagine(
            self.world_model,
            self.policy,
            contexts,
            instructions,
            max_steps,
            temperature,
            None,
            sampler,
            sampler_steps,
            generator,
            chunks,
        )


class RayImagination:
    def __init__(
        self,
        workers: int,
        policy: str,
        world_model: str,
        device: str = "cpu",
        threads_per_worker: int = 1,
    ):
        import ray

        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=threads_per_worker)(ImaginationWorker)
        self.workers = [remote.remote(policy, world_model, device, threads_per_worker) for _ in range(workers)]

    def __call__(
        self,
        world_model,
        policy,
        contexts,
        instructions,
        max_steps,
        temperature=1.0,
        reward_model=None,
        sampler="ddim",
        sampler_steps=10,
        generator=None,
    ) -> ImaginedBatch:
        """Same contract as imagination.imagine; ``world_model`` is the workers' own (ignored here,
        kept for the signature); the rollouts are judged here, by ``reward_model``."""
        import ray

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        weights = ray.put({k: v.cpu() for k, v in policy.model.state_dict().items()})
        shares = np.array_split(np.arange(len(contexts)), len(self.workers))
        budgets = np.broadcast_to(np.asarray(max_steps), (len(contexts),))
        chunks = math.ceil(budgets.max() / policy.model.config.chunk_size)  # every share the same
        futures = [
            worker.imagine.remote(
                weights,
                contexts[share],
                [instructions[i] for i in share],
                budgets[share],
                temperature,
                sampler,
                sampler_steps,
                seed + w,
                chunks,
            )
            for w, (worker, share) in enumerate(zip(self.workers, shares, strict=True))
            if len(share)
        ]
        parts = ray.get(futures)
        batch = ImaginedBatch(
            frames=np.concatenate([p.frames for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            bins=torch.cat([p.bins for p in parts]),
            log_probs=torch.cat([p.log_probs for p in parts]),
            instructions=[i for p in parts for i in p.instructions],
            budgets=np.concatenate([p.budgets for p in parts]),
        )
        if reward_model is not None:
            judge_rollouts(batch, [reward_model] * len(contexts))
        return batch

    def shutdown(self) -> None:
        import ray

        for worker in self.workers:
            ray.kill(worker)
