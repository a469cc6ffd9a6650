"""app/live_route.py over real HTTP (FastAPI's TestClient) on the sim robot's cameras."""
import json

import cv2
import fastapi
import numpy as np
from fastapi.testclient import TestClient

from app.live_route import FRAME_HEADER, add_live_route
from app.live_view import LiveFeeds


def test_a_frame_is_the_jpeg_itself_with_its_facts_in_a_header(sim_robot):
    app = fastapi.FastAPI()
    add_live_route(app, LiveFeeds(sim_robot.cameras))
    with TestClient(app) as client:
        first = client.get("/ewam/live/head")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert first.headers["cache-control"] == "no-store"
        facts = json.loads(first.headers[FRAME_HEADER])
        assert facts["camera"] == "head" and facts["error"] is None and "jpeg" not in facts
        image = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (facts["height"], facts["width"], 3) == (240, 320, 3)
        newer = client.get("/ewam/live/head", params={"after": facts["seq"]})
        assert json.loads(newer.headers[FRAME_HEADER])["seq"] > facts["seq"]
        # the sim cameras have no depth: asking for it falls back to colour instead of failing
        asked = client.get("/ewam/live/head", params={"depth": 1})
        assert json.loads(asked.headers[FRAME_HEADER])["view"] == "rgb"


def test_errors_are_json_naming_the_problem(sim_robot):
    app = fastapi.FastAPI()
    add_live_route(app, LiveFeeds(sim_robot.cameras))
    with TestClient(app) as client:
        unknown = client.get("/ewam/live/top")
        assert unknown.headers["content-type"] == "application/json"
        assert "unknown camera 'top'" in unknown.json()["error"]
        camera = sim_robot.cameras["right_wrist"]
        camera.disconnect()
        try:
            assert "not connected" in client.get("/ewam/live/right_wrist").json()["error"]
        finally:
            camera.connect()
        assert client.get("/ewam/live/head", params={"after": "x"}).status_code == 422
