"""The local Slack receiver answers the Web API calls the FAQ bot makes besides chat.postMessage: auth.test
(bolt's authorisation: which bot user the token is) and usergroups.users.list (role per user group), with
slack-sdk's own WebClient (it sends usergroups.users.list as a GET)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from processors.runtime.slack_receiver import BOT_USER_ID


def test_auth_test_and_usergroups_users_list(receiver):
    receiver.usergroups = {"S0STAFF": ["U1", "U2"]}
    client = WebClient(token=receiver.bot_token, base_url=receiver.api_url)
    me = client.auth_test()
    assert me["ok"] and me["user_id"] == BOT_USER_ID and me["bot_id"]
    assert client.usergroups_users_list(usergroup="S0STAFF")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=receiver.api_url).usergroups_users_list(usergroup="S0STAFF")
    assert bad.value.response["error"] == "invalid_auth"
    assert [m for m, _ in receiver.api_calls] == ["auth.test", "usergroups.users.list", "usergroups.users.list"]
