"""The embedded MuJoCo simulation: a bimanual ViperX 300s tabletop (RoboTwin aloha-agilex layout).

env.py      SimEnv, ALOHA_SPEC, CAMERA_NAMES, SimConfig: the deterministic, single-threaded sim
tasks.py    TASKS: objects, layouts from the seed, instructions, success checks
expert.py   make_expert / run_expert_episode: scripted IK + waypoint experts
robot.py    SimRobot, SimArm, SimCamera: the sim as a live robot behind the hardware interfaces
"""
