// The one place the room state changes: dispatch(action) runs the reducer (state.js) and
// then tells every subscriber (the views, the tile-layer sync) what happened.
import { initialState, reduce } from './state.js';

export function createStore(init) {
  const state = initialState(init);
  const listeners = [];
  return {
    state,
    dispatch(action) {
      reduce(state, action);
      for (const l of listeners) l(state, action);
    },
    subscribe(fn) {
      listeners.push(fn);
    },
  };
}
