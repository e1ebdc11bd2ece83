export { bullBoardRoutes, BULL_BOARD_PATH } from './mount-bull-board.ts';
