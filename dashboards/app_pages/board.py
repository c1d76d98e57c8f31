"""The supervisor's board for the big screen: the running shift, live."""

from __future__ import annotations

import streamlit as st

from dashboards import board, data

# Readable from across the hall: big figures, the machine's name and state large.
st.markdown("<style>[data-testid='stMetricValue'] {font-size: 2.4rem;}"
            "[data-testid='stMetricLabel'] p {font-size: 1.1rem;}"
            "[data-testid='stColumn'] [data-testid='stColumn'] [data-testid='stMetricValue']"
            " {font-size: 1.5rem;}</style>",
            unsafe_allow_html=True)
st.title("Shift board")


@st.fragment(run_every=data.BOARD_REFRESH)
def live_board() -> None:
    board.show(data.live())


live_board()
