"""A cohort of simulated homes: elders' days, device faults and incidents with ground truth.

Each home has a layout (rooms and which devices are where: `layout`) and a persona (wake and
sleep times with day-to-day spread, meals, bathroom visits including at night, naps, TV,
outings, visitors: `personas`). A day is first planned as a timeline of *segments* (where the
elder is and what they do: `timeline`, `routine`), then each device renders the timeline the
way real devices do (`emission`): PIR pulses with a blind time, door open/close pairs, mat
occupancy, water-flow bursts, appliance power, indoor climate following the weather and the
heating (`run`), vitals with a circadian rhythm, heartbeats and battery levels. Incidents
change the timeline (a collapse: the elder lies still until a helper arrives: `incidents`) or
the environment (gas, smoke, cold); device faults silence devices (`schedule`). Every
incident is one line of ground truth (`truth`).

Everything is a pure function of (seed, home, day): a cohort (`cohort.Cohort`, assembled from
one `home_sim.HomeSimulation` per home) is reproducible and is streamed day by day, so 200
homes x 30 days never sit in memory at once.
"""

from simulators.cohort.cohort import Cohort

__all__ = ["Cohort"]
