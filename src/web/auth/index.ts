export {
  credentialsFrom,
  assertCredentialsForEnv,
  authEnabled,
  safeEqual,
  checkPassword,
  checkToken,
  type Credentials,
  type Role,
  type DashboardAuthSettings,
} from './credentials.ts';
export { authMiddleware } from './auth-middleware.ts';
export { csrfMiddleware, CSRF_COOKIE, CSRF_HEADER } from './csrf-middleware.ts';
